//! Just enough markdown to tell whether a byte offset lies in a list item, and which item.
//!
//! Only the lines around the offset are read (walking upwards), so the cost is paid per
//! mentioned brand rather than per answer; the line feeds come from the sentence splitter, which
//! stops at each of them anyway. The rules follow CommonMark where LLM answers need
//! them: items continue across blank lines and indented or lazy continuation lines; a change of
//! bullet character or ordered delimiter, a heading, a fence, a thematic break or an unindented
//! paragraph after a blank line ends a list.
//!
//! A position is always the position of a top-level item: a brand first named in a nested
//! sub-bullet gets the number of the item it is nested under, the position a reader sees
//! ("2. Salesforce" with a sub-bullet "- Slack" puts Slack at 2, not at 1 of the sub-list).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Bullet(u8),
    Ordered(u8),
}

#[derive(Debug, Clone, Copy)]
struct Marker {
    indent: usize,
    /// Column where the item's text starts; continuation lines indented this far belong to it.
    content_col: usize,
    /// Byte offset of the item's text within the line.
    content_byte: usize,
    kind: ListKind,
    number: u32,
}

/// The 1-based position of the top-level list item that contains `offset`: the number the
/// reader sees for an ordered list (its start number plus the items before it), the ordinal for
/// a bulleted one. Nested items count as the top-level item they sit under.
#[cfg(test)]
pub(crate) fn list_position(text: &str, offset: usize) -> Option<u32> {
    ListPositions::new(text).at(offset)
}

/// [`list_position`] for several offsets of one text. Item positions found along the way are
/// remembered, so brands in the same long list do not each walk it back to its first item.
pub(crate) struct ListPositions<'t> {
    lines: Lines<'t>,
    /// Item lines whose position is known, by line number, ascending.
    known: Vec<(usize, u32)>,
    /// Scratch: the siblings met on the current walk, nearest first.
    siblings: Vec<usize>,
}

impl<'t> ListPositions<'t> {
    /// Positions in `text`, finding its line feeds.
    #[cfg(test)]
    pub(crate) fn new(text: &'t str) -> Self {
        Self::with_newlines(text, text.match_indices('\n').map(|(i, _)| i).collect())
    }

    /// Positions in `text`, whose line feeds are at `newlines` (ascending).
    pub(crate) fn with_newlines(text: &'t str, newlines: Vec<usize>) -> Self {
        Self {
            lines: Lines { text, newlines },
            known: Vec::with_capacity(16),
            siblings: Vec::with_capacity(16),
        }
    }

    pub(crate) fn at(&mut self, offset: usize) -> Option<u32> {
        let (line, marker) = containing_item(&self.lines, offset)?;
        let (line, marker) = outermost_item(&self.lines, line, marker);
        Some(self.item_position(line, marker))
    }

    fn known(&self, line: usize) -> Option<u32> {
        self.known
            .binary_search_by_key(&line, |&(l, _)| l)
            .ok()
            .and_then(|i| self.known.get(i))
            .map(|&(_, p)| p)
    }

    fn remember(&mut self, line: usize, position: u32) {
        if let Err(i) = self.known.binary_search_by_key(&line, |&(l, _)| l) {
            self.known.insert(i, (line, position));
        }
    }

    fn item_position(&mut self, line: usize, item: Marker) -> u32 {
        if let Some(p) = self.known(line) {
            return p;
        }
        self.siblings.clear();
        let mut first_number = item.number;
        let mut from_known = None;
        let mut in_lazy_run = false;
        let mut cur = line;
        while let Some(ps) = cur.checked_sub(1) {
            cur = ps;
            match classify(self.lines.line(ps)) {
                Line::Blank => {
                    if in_lazy_run {
                        // An unindented paragraph after a blank line ended the earlier list.
                        break;
                    }
                }
                Line::Item(m) => {
                    in_lazy_run = false;
                    if m.indent > item.indent {
                        continue;
                    }
                    if m.indent == item.indent && m.kind == item.kind {
                        if let Some(p) = self.known(ps) {
                            from_known = Some(p);
                            break;
                        }
                        self.siblings.push(ps);
                        first_number = m.number;
                        continue;
                    }
                    break;
                }
                Line::Break => break,
                Line::Text { indent } => {
                    if indent <= item.indent {
                        in_lazy_run = true;
                    }
                }
            }
        }
        let before = u32::try_from(self.siblings.len()).unwrap_or(u32::MAX);
        // The first item of the list (or the nearest known one) and the items after it count up.
        let base = match (from_known, item.kind) {
            (Some(p), _) => p.saturating_add(1),
            (None, ListKind::Bullet(_)) => 1,
            (None, ListKind::Ordered(_)) => first_number.max(1),
        };
        let position = base.saturating_add(before);
        let siblings = std::mem::take(&mut self.siblings);
        for (distance, &sibling) in siblings.iter().enumerate() {
            let d = u32::try_from(distance).unwrap_or(u32::MAX);
            self.remember(sibling, position.saturating_sub(d.saturating_add(1)));
        }
        self.siblings = siblings;
        self.remember(line, position);
        position
    }
}

/// The text of every list item's first line, after its marker, in text order; nested items
/// included. Competitor discovery reads the names answers put at the head of each item.
pub(crate) fn item_leads(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter_map(|line| {
        let marker = parse_marker(line)?;
        line.get(marker.content_byte..)
    })
}

/// The lines of a text, numbered from 0, by the offsets of its line feeds: known in advance
/// rather than searched for backwards from every line a walk visits.
struct Lines<'t> {
    text: &'t str,
    newlines: Vec<usize>,
}

impl<'t> Lines<'t> {
    /// The number (from 0) of the line holding `offset`, a char boundary of the text.
    fn index_of(&self, offset: usize) -> Option<usize> {
        self.text
            .is_char_boundary(offset)
            .then(|| self.newlines.partition_point(|&n| n < offset))
    }

    /// Byte offset where line `i` starts.
    fn start(&self, i: usize) -> usize {
        i.checked_sub(1)
            .and_then(|prev| self.newlines.get(prev))
            .map_or(0, |&n| n + 1)
    }

    /// Line `i` without its line feed.
    fn line(&self, i: usize) -> &'t str {
        let end = self.newlines.get(i).copied().unwrap_or(self.text.len());
        self.text.get(self.start(i)..end).unwrap_or_default()
    }
}

fn indent_of(line: &str) -> (usize, usize) {
    let mut col = 0;
    let mut bytes = 0;
    for b in line.bytes() {
        match b {
            b' ' => col += 1,
            b'\t' => col += 4 - col % 4,
            _ => break,
        }
        bytes += 1;
    }
    (col, bytes)
}

fn is_thematic_break(trimmed: &str) -> bool {
    let Some(first) = trimmed.bytes().next() else {
        return false;
    };
    // `all` first: on a list item it fails at the second or third byte.
    matches!(first, b'-' | b'*' | b'_')
        && trimmed
            .bytes()
            .all(|b| b == first || b == b' ' || b == b'\t')
        && trimmed.bytes().filter(|&b| b == first).count() >= 3
}

/// What a line is, for list structure; computed once per visited line.
#[derive(Debug, Clone, Copy)]
enum Line {
    Blank,
    /// A heading, code fence or thematic break: ends any list.
    Break,
    Item(Marker),
    Text {
        indent: usize,
    },
}

fn classify(line: &str) -> Line {
    let (indent, lead) = indent_of(line);
    let rest = line.get(lead..).unwrap_or_default();
    match rest.as_bytes().first() {
        None | Some(b'\r') => Line::Blank,
        Some(b'#') => Line::Break,
        Some(b'`') if rest.starts_with("```") => Line::Break,
        Some(b'~') if rest.starts_with("~~~") => Line::Break,
        Some(b'-' | b'*' | b'_') if is_thematic_break(rest.trim_end()) => Line::Break,
        Some(b'-' | b'*' | b'+' | b'0'..=b'9') => {
            parse_marker(line).map_or(Line::Text { indent }, Line::Item)
        }
        _ => Line::Text { indent },
    }
}

fn parse_marker(line: &str) -> Option<Marker> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (indent, lead) = indent_of(line);
    let bytes = line.as_bytes();
    let rest = bytes.get(lead..)?;
    if !matches!(rest.first(), Some(b'-' | b'*' | b'+' | b'0'..=b'9')) {
        return None;
    }
    let (kind, number, width) = match rest.first()? {
        b @ (b'-' | b'*' | b'+') => {
            if is_thematic_break(line.trim()) {
                return None;
            }
            (ListKind::Bullet(*b), 0, 1)
        }
        b'0'..=b'9' => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let delim = *rest.get(digits)?;
            if digits > 9 || !matches!(delim, b'.' | b')') {
                return None;
            }
            let number = rest[..digits]
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            (ListKind::Ordered(delim), number, digits + 1)
        }
        _ => return None,
    };
    let after = rest.get(width..).unwrap_or_default();
    let spaces = after
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    if spaces == 0 && !after.is_empty() {
        return None;
    }
    let pad = if spaces == 0 || spaces > 4 { 1 } else { spaces };
    Some(Marker {
        indent,
        content_col: indent + width + pad,
        content_byte: lead + width + spaces,
        kind,
        number,
    })
}

/// The top-level item (its line number and marker) that `item`, on `line`, is nested in, or
/// `item` itself when it is not nested. A parent is an item above that starts left of `item`
/// and whose content column `item` reaches; the walk ends at a break or at an unindented
/// paragraph after a blank line, which end the list.
fn outermost_item(lines: &Lines<'_>, mut line: usize, mut item: Marker) -> (usize, Marker) {
    let mut cur = line;
    let mut blank_below = false;
    while item.indent > 0 {
        let Some(ps) = cur.checked_sub(1) else { break };
        cur = ps;
        match classify(lines.line(ps)) {
            Line::Blank => blank_below = true,
            Line::Break => break,
            Line::Item(m) => {
                blank_below = false;
                if m.indent < item.indent {
                    if m.content_col > item.indent {
                        // Too little indentation to be its child: a list of its own.
                        break;
                    }
                    line = ps;
                    item = m;
                }
            }
            Line::Text { indent } => {
                if blank_below && indent == 0 {
                    break;
                }
                blank_below = false;
            }
        }
    }
    (line, item)
}

/// The item (its line number and marker) whose content contains `offset`, if any.
fn containing_item(lines: &Lines<'_>, offset: usize) -> Option<(usize, Marker)> {
    let line = lines.index_of(offset)?;
    let mut need = match classify(lines.line(line)) {
        Line::Item(m) => {
            return (offset >= lines.start(line) + m.content_byte).then_some((line, m));
        }
        Line::Break | Line::Blank => return None,
        Line::Text { indent } => indent,
    };
    let mut blank_between = false;
    let mut cur = line;
    while let Some(ps) = cur.checked_sub(1) {
        cur = ps;
        match classify(lines.line(ps)) {
            Line::Blank => blank_between = true,
            Line::Item(m) => {
                if !blank_between || need >= m.content_col {
                    return Some((ps, m));
                }
                // Outdented below a nested item: it may still belong to an ancestor above.
                if need == 0 {
                    return None;
                }
            }
            Line::Break => return None,
            Line::Text { indent } => {
                if !blank_between {
                    // Same paragraph: it belongs wherever the paragraph's first line belongs.
                    need = indent;
                } else if need == 0 {
                    return None;
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(text: &str, needle: &str) -> Option<u32> {
        list_position(text, text.find(needle).unwrap())
    }

    #[test]
    fn cached_walks_agree_with_fresh_ones() {
        let t = "1. a\n   more\n2. b\n- x\n- y\n  - nested\n- z\n3. c\n\n1. d\n1. e\n1. f";
        let offsets: Vec<usize> = t.char_indices().map(|(i, _)| i).collect();
        let mut shared = ListPositions::new(t);
        for &o in &offsets {
            assert_eq!(shared.at(o), list_position(t, o), "offset {o}");
        }
        let mut backwards = ListPositions::new(t);
        for &o in offsets.iter().rev() {
            assert_eq!(backwards.at(o), list_position(t, o), "offset {o}");
        }
    }

    #[test]
    fn numbered_and_bulleted() {
        let t =
            "Top picks:\n1. HubSpot\n2. Salesforce\n3) nope\n\n- Notion\n* Asana\n+ Trello\n+ Jira";
        assert_eq!(pos(t, "HubSpot"), Some(1));
        assert_eq!(pos(t, "Salesforce"), Some(2));
        assert_eq!(
            pos(t, "nope"),
            Some(3),
            "a new delimiter starts a new list, shown as 3"
        );
        assert_eq!(pos(t, "Notion"), Some(1));
        assert_eq!(
            pos(t, "Asana"),
            Some(1),
            "a new bullet character starts a new list"
        );
        assert_eq!(pos(t, "Jira"), Some(2));
        assert_eq!(pos(t, "Top"), None);
    }

    #[test]
    fn loose_lists_continuations_and_nesting() {
        let t = "1. **HubSpot**\n\n   Works with Zapier.\n\n2. **Salesforce**\n   - Slack\n   - Tableau\n3. Pipedrive\nlazy Zoho\n\nAfter Asana";
        assert_eq!(pos(t, "Zapier"), Some(1));
        assert_eq!(pos(t, "Salesforce"), Some(2));
        assert_eq!(
            pos(t, "Slack"),
            Some(2),
            "nested items take their parent's position"
        );
        assert_eq!(pos(t, "Tableau"), Some(2));
        assert_eq!(pos(t, "Pipedrive"), Some(3));
        assert_eq!(pos(t, "Zoho"), Some(3), "lazy continuation");
        assert_eq!(pos(t, "Asana"), None);
    }

    #[test]
    fn nested_items_count_as_their_top_level_item() {
        let t =
            "1. Intro\n2. CRMs:\n   - HubSpot\n     1. Zoho\n   - Pipedrive\n3. Other\n   * Asana";
        assert_eq!(pos(t, "HubSpot"), Some(2), "not 1 of the sub-list");
        assert_eq!(pos(t, "Zoho"), Some(2), "two levels down");
        assert_eq!(pos(t, "Pipedrive"), Some(2), "not 2 of the sub-list");
        assert_eq!(pos(t, "Asana"), Some(3));
        let loose = "- a\n- b\n\n  More on b.\n\n  - HubSpot";
        assert_eq!(pos(loose, "HubSpot"), Some(2), "loose parent item");
        let wide = "9. a\n10. b\n    - HubSpot";
        assert_eq!(
            pos(wide, "HubSpot"),
            Some(10),
            "a wide marker's content column"
        );
        let lazy = "1. a\n2. b\nlazy line\n   - HubSpot";
        assert_eq!(pos(lazy, "HubSpot"), Some(2), "across a lazy continuation");
        // Indented too little to be a child of "10.": a list of its own, as CommonMark reads it.
        assert_eq!(pos("10. a\n  - HubSpot", "HubSpot"), Some(1));
        // A paragraph after a blank line ended the outer list: the indented list stands alone.
        assert_eq!(
            pos("- a\n\nText.\n\n  - x\n  - HubSpot", "HubSpot"),
            Some(2)
        );
        // An indented top-level list still counts from its own first item.
        assert_eq!(pos(" - a\n - HubSpot", "HubSpot"), Some(2));
    }

    #[test]
    fn rendered_numbers_and_breaks() {
        assert_eq!(pos("1. a\n1. b\n1. HubSpot", "HubSpot"), Some(3));
        assert_eq!(pos("1. a\n\nText.\n\n2. HubSpot", "HubSpot"), Some(2));
        assert_eq!(pos("- a\n\nIntro:\n- HubSpot", "HubSpot"), Some(1));
        assert_eq!(pos("- a\n## H\n- HubSpot", "HubSpot"), Some(1));
        assert_eq!(pos("- a\n---\n- HubSpot", "HubSpot"), Some(1));
        assert_eq!(pos("**HubSpot** is first", "HubSpot"), None);
        assert_eq!(pos("---\nHubSpot", "HubSpot"), None);
        assert_eq!(pos("1.HubSpot", "HubSpot"), None);
        assert_eq!(pos("- a\r\n- HubSpot\r\n", "HubSpot"), Some(2));
    }

    #[test]
    fn item_leads_follow_the_markers() {
        let t = "Intro\n1. **HubSpot** – free\n   - Slack\n* Asana\n---\n2)Nope\n10) Zoho\r\n-\n";
        let leads: Vec<&str> = item_leads(t).collect();
        assert_eq!(leads, ["**HubSpot** – free", "Slack", "Asana", "Zoho", ""]);
    }

    /// The line lookups the walks used before the line index: searches of the text.
    fn line_at_by_search(text: &str, offset: usize) -> Option<(usize, usize)> {
        let before = text.get(..offset)?;
        let start = before.rfind('\n').map_or(0, |p| p + 1);
        let end = text
            .get(offset..)?
            .find('\n')
            .map_or(text.len(), |p| offset + p);
        Some((start, end))
    }

    fn prev_line_by_search(text: &str, line_start: usize) -> Option<(usize, &str)> {
        let end = line_start.checked_sub(1)?;
        let before = text.get(..end)?;
        let start = before.rfind('\n').map_or(0, |p| p + 1);
        Some((start, before.get(start..)?))
    }

    proptest::proptest! {
        #[test]
        fn line_index_agrees_with_searching(text in "[a1 \t\r\n.é-]{0,80}") {
            let lines = ListPositions::new(&text).lines;
            for offset in 0..=text.len() + 1 {
                let by_index = lines.index_of(offset).map(|i| {
                    let start = lines.start(i);
                    (start, start + lines.line(i).len())
                });
                proptest::prop_assert_eq!(by_index, line_at_by_search(&text, offset));
                if let Some(i) = lines.index_of(offset) {
                    let start = lines.start(i);
                    let prev = i.checked_sub(1).map(|p| (lines.start(p), lines.line(p)));
                    proptest::prop_assert_eq!(prev, prev_line_by_search(&text, start));
                }
            }
        }
    }
}
