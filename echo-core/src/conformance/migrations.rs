//! Released migrations never change. Each SQL store records the SHA-256 of every migration
//! file in `migrations.sha256` (the `sha256sum` format: `<hex>  <file>`, in order) and checks
//! it with [`check_recorded`] in its tests, so an edited, deleted, renamed or inserted
//! migration fails CI instead of leaving deployed databases on a schema no file describes.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Checks the `.sql` files of `migrations_dir` against `recorded` (a `migrations.sha256`):
/// every recorded file is unchanged, the recorded files come first in name order, and every
/// later file is recorded. Returns how many files were checked.
///
/// # Errors
/// A message naming the file and saying how to fix it: for a new migration, the exact line
/// to append.
pub fn check_recorded(migrations_dir: &Path, recorded: &Path) -> Result<usize, String> {
    let list = std::fs::read_to_string(recorded)
        .map_err(|e| format!("cannot read {}: {e}", recorded.display()))?;
    let mut files: Vec<String> = std::fs::read_dir(migrations_dir)
        .map_err(|e| format!("cannot read {}: {e}", migrations_dir.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    let digest = |name: &str| -> Result<String, String> {
        let bytes = std::fs::read(migrations_dir.join(name))
            .map_err(|e| format!("cannot read migration {name}: {e}"))?;
        Ok(hex::encode(Sha256::digest(&bytes)))
    };
    let entries = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let mut checked = 0;
    for (i, line) in entries.enumerate() {
        let (hash, name) = line
            .split_once("  ")
            .ok_or_else(|| format!("{}: {line:?} is not `<sha256>  <file>`", recorded.display()))?;
        if files.get(i).map(String::as_str) != Some(name) {
            return Err(format!(
                "released migration {name} is missing or a new file sorts before it (found {:?} \
                 in its place): migrations are append-only; restore {name} and give new files a \
                 higher number",
                files.get(i)
            ));
        }
        let now = digest(name)?;
        if now != hash {
            return Err(format!(
                "released migration {name} was edited (recorded sha256 {hash}, now {now}): \
                 restore it (`git checkout -- {name}`) and put the change in a new migration file"
            ));
        }
        checked += 1;
    }
    if checked < files.len() {
        let mut lines = String::new();
        for name in &files[checked..] {
            lines.push_str(&format!("{}  {name}\n", digest(name)?));
        }
        return Err(format!(
            "new migration(s) are not recorded; once final, append to {}:\n{lines}",
            recorded.display()
        ));
    }
    Ok(checked)
}

/// [`check_recorded`] for a store crate laid out as both of Echo's are: `migrations/` and
/// `migrations.sha256` beside its `Cargo.toml`; pass `env!("CARGO_MANIFEST_DIR")`.
///
/// # Errors
/// As [`check_recorded`].
pub fn check_crate(manifest_dir: &str) -> Result<usize, String> {
    let root = Path::new(manifest_dir);
    check_recorded(&root.join("migrations"), &root.join("migrations.sha256"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_insertions_and_unrecorded_files_are_named() {
        let root = std::env::temp_dir().join(format!("echo-migrations-{}", uuid::Uuid::now_v7()));
        let m = root.join("migrations");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("0001_a.sql"), "CREATE TABLE a (x INT);\n").unwrap();
        std::fs::write(m.join("0002_b.sql"), "CREATE TABLE b (x INT);\n").unwrap();
        let list = root.join("migrations.sha256");
        let line = |name: &str| {
            format!(
                "{}  {name}\n",
                hex::encode(Sha256::digest(std::fs::read(m.join(name)).unwrap()))
            )
        };
        std::fs::write(&list, line("0001_a.sql") + &line("0002_b.sql")).unwrap();
        assert_eq!(check_recorded(&m, &list), Ok(2));

        std::fs::write(m.join("0003_c.sql"), "CREATE TABLE c (x INT);\n").unwrap();
        let e = check_recorded(&m, &list).unwrap_err();
        assert!(e.contains(&line("0003_c.sql")), "{e}");

        std::fs::remove_file(m.join("0003_c.sql")).unwrap();
        std::fs::write(m.join("0002_b.sql"), "CREATE TABLE b (y INT);\n").unwrap();
        let e = check_recorded(&m, &list).unwrap_err();
        assert!(e.contains("0002_b.sql was edited"), "{e}");

        std::fs::write(m.join("0002_b.sql"), "CREATE TABLE b (x INT);\n").unwrap();
        std::fs::write(m.join("0001_0_inserted.sql"), "SELECT 1;\n").unwrap();
        let e = check_recorded(&m, &list).unwrap_err();
        assert!(e.contains("append-only"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
