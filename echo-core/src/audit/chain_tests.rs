//! Verification, checkpoints and archives, including the mutation tests: every single-row edit,
//! deletion, insertion and swap in a 200-event chain must be caught at the right seq.

use std::io::Cursor;

use uuid::Uuid;

use super::*;
use crate::model::{AuditEvent, NewAuditEvent, Timestamp, UserId};

const N: u64 = 200;
const SEED: [u8; 32] = [7; 32];

fn new_event(i: u64) -> NewAuditEvent {
    let actions = ["login", "create_experiment", "delete_api_key", "export_run"];
    NewAuditEvent {
        actor_user_id: (!i.is_multiple_of(3))
            .then(|| UserId::from_uuid(Uuid::from_u128(u128::from(i % 7) + 1))),
        action: actions[(i % 4) as usize].into(),
        resource_type: "experiment".into(),
        resource_id: i.is_multiple_of(2).then(|| format!("exp-{i}")),
        ip: Some(format!("10.0.{}.{}", i / 256 % 256, i % 256)),
        user_agent: (!i.is_multiple_of(5)).then(|| "echoai/0.1".to_owned()),
        request_id: Some(format!("req-{i}")),
        details: serde_json::json!({"i": i, "ok": i.is_multiple_of(2)}),
        created_at: Timestamp::from_unix_micros(1_760_000_000_000_000 + i as i64 * 1_000_000)
            .unwrap(),
    }
}

fn link(prev_hash: [u8; 32], seq: u64, event: NewAuditEvent) -> AuditEvent {
    let hash = chain_hash(&prev_hash, seq, &event);
    AuditEvent {
        seq,
        event,
        actor_pseudonym: None,
        prev_hash,
        hash,
    }
}

/// A valid chain of `n` varied events from the genesis; the walk tests read it from a store.
pub(super) fn chain(n: u64) -> Vec<AuditEvent> {
    let mut prev = GENESIS_HASH;
    (1..=n)
        .map(|seq| {
            let e = link(prev, seq, new_event(seq));
            prev = e.hash;
            e
        })
        .collect()
}

/// Recomputes every link from `events[from]` on, as someone with write access to the table can.
fn rehash_from(events: &mut [AuditEvent], from: usize) {
    for i in from..events.len() {
        let prev = if i == 0 {
            GENESIS_HASH
        } else {
            events[i - 1].hash
        };
        events[i].prev_hash = prev;
        events[i].hash = chain_hash(&prev, events[i].seq, &events[i].event);
    }
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::from_seed(&SEED)
}

/// Checkpoints of the genuine chain at `seqs`.
fn checkpoints(events: &[AuditEvent], seqs: &[u64]) -> Vec<AuditCheckpoint> {
    let at = Timestamp::from_unix_micros(1_770_000_000_000_000).unwrap();
    seqs.iter()
        .map(|&s| signer().sign(s, events[(s - 1) as usize].hash, at))
        .collect()
}

/// A verifier from genesis holding `checkpoints`. Signature checks are slow in debug builds, so
/// tests that verify many mutated chains build it once and clone it.
fn walker(checkpoints: &[AuditCheckpoint]) -> ChainVerifier {
    let key = signer().verifier();
    let mut verifier = ChainVerifier::new(ChainStart::Genesis);
    for cp in checkpoints {
        verifier.add_checkpoint(&key, cp).unwrap();
    }
    verifier
}

fn walk(walker: &ChainVerifier, events: &[AuditEvent]) -> Result<VerifyReport, ChainBreak> {
    verify_remaining(walker.clone(), events)
}

fn verify_with(
    events: &[AuditEvent],
    checkpoints: &[AuditCheckpoint],
) -> Result<VerifyReport, ChainBreak> {
    walk(&walker(checkpoints), events)
}

fn brk(seq: u64, kind: BreakKind) -> Result<VerifyReport, ChainBreak> {
    Err(ChainBreak { seq, kind })
}

// ---- the chain --------------------------------------------------------------------------------

#[test]
fn intact_chain_verifies() {
    let events = chain(N);
    let report = verify_chain(ChainStart::Genesis, &events).unwrap();
    assert_eq!(
        report,
        VerifyReport {
            events: N,
            first_seq: Some(1),
            last_seq: N,
            head_hash: events[(N - 1) as usize].hash,
            checkpoints_matched: 0,
            signed_through: None,
            unsigned_tail: N,
            erased: 0,
        }
    );
    let empty = verify_chain(ChainStart::Genesis, Vec::<AuditEvent>::new()).unwrap();
    assert_eq!(
        (empty.events, empty.first_seq, empty.last_seq),
        (0, None, 0)
    );
    assert_eq!(empty.head_hash, GENESIS_HASH);
}

type Mutation = (&'static str, fn(&mut AuditEvent), BreakKind);

#[test]
fn every_altered_field_is_caught_at_its_seq() {
    let mutations: &[Mutation] = &[
        ("action", |e| e.event.action.push('!'), BreakKind::Altered),
        (
            "resource_type",
            |e| e.event.resource_type = "user".into(),
            BreakKind::Altered,
        ),
        (
            "resource_id",
            |e| e.event.resource_id = Some(format!("{:?}+", e.event.resource_id)),
            BreakKind::Altered,
        ),
        (
            "actor_user_id",
            |e| e.event.actor_user_id = Some(UserId::from_uuid(Uuid::from_u128(999))),
            BreakKind::Altered,
        ),
        (
            "ip",
            |e| e.event.ip = Some("203.0.113.9".into()),
            BreakKind::Altered,
        ),
        (
            "user_agent",
            |e| e.event.user_agent = Some("curl/8".into()),
            BreakKind::Altered,
        ),
        (
            "request_id",
            |e| e.event.request_id = None,
            BreakKind::Altered,
        ),
        (
            "details",
            |e| e.event.details = serde_json::json!({"i": 0, "tampered": true}),
            BreakKind::Altered,
        ),
        (
            "created_at",
            |e| {
                e.event.created_at =
                    Timestamp::from_unix_micros(e.event.created_at.unix_micros() + 1).unwrap()
            },
            BreakKind::Altered,
        ),
        ("hash", |e| e.hash[31] ^= 1, BreakKind::Altered),
        (
            "prev_hash",
            |e| e.prev_hash[0] ^= 0x80,
            BreakKind::BrokenLink,
        ),
    ];
    let genuine = chain(N);
    let cps = walker(&checkpoints(&genuine, &[100, N]));
    let mut cases = 0;
    for &(field, mutate, kind) in mutations {
        for k in 1..=N {
            let mut events = genuine.clone();
            mutate(&mut events[(k - 1) as usize]);
            assert_eq!(walk(&cps, &events), brk(k, kind), "{field} of seq {k}");
            cases += 1;
        }
    }
    assert_eq!(cases, mutations.len() as u64 * N);
}

#[test]
fn every_deleted_event_is_caught_at_its_seq() {
    let genuine = chain(N);
    let cps = walker(&checkpoints(&genuine, &[100, N]));
    for k in 1..=N {
        let mut events = genuine.clone();
        events.remove((k - 1) as usize);
        let expected = if k == N {
            // Only a checkpoint tells the last event was there.
            BreakKind::Truncated { signed_through: N }
        } else {
            BreakKind::Deleted { count: 1 }
        };
        assert_eq!(walk(&cps, &events), brk(k, expected), "delete seq {k}");
    }
    // Without a checkpoint, cutting the tail is invisible: that is what checkpoints are for.
    let mut events = genuine.clone();
    events.truncate(150);
    assert!(verify_with(&events, &[]).is_ok());
    let cps = checkpoints(&genuine, &[160]);
    assert_eq!(
        verify_with(&events, &cps),
        brk(
            151,
            BreakKind::Truncated {
                signed_through: 160
            }
        )
    );
    // A run of deletions is reported once, with its length.
    let mut events = genuine.clone();
    events.drain(9..14);
    assert_eq!(
        verify_with(&events, &[]),
        brk(10, BreakKind::Deleted { count: 5 })
    );
}

#[test]
fn every_inserted_event_is_caught_at_its_seq() {
    let genuine = chain(N);
    let cp_seqs = [100, N];
    let cps = walker(&checkpoints(&genuine, &cp_seqs));
    for k in 0..=N {
        let prev = if k == 0 {
            GENESIS_HASH
        } else {
            genuine[(k - 1) as usize].hash
        };
        let mut fake = new_event(k);
        fake.action = "grant_admin".into();
        // A forged event after seq k, with its own hashes recomputed.
        let forged = link(prev, k + 1, fake);

        // Kept beside the genuine k + 1 (two events claim one seq)…
        let mut duplicate = genuine.clone();
        duplicate.insert(k as usize, forged.clone());
        // …or with the genuine tail renumbered to make room.
        let mut renumbered = duplicate.clone();
        for e in &mut renumbered[(k + 1) as usize..] {
            e.seq += 1;
        }

        for (how, events) in [("duplicate", &duplicate), ("renumbered", &renumbered)] {
            let got = walk(&cps, events);
            if k == N {
                // Appending after the last checkpoint looks like a genuine append; it is reported
                // as the unsigned tail.
                let report = got.unwrap();
                assert_eq!((report.unsigned_tail, report.signed_through), (1, Some(N)));
            } else if cp_seqs.contains(&(k + 1)) {
                // The forged event sits where a checkpoint signed the genuine one.
                assert_eq!(
                    got,
                    brk(k + 1, BreakKind::CheckpointMismatch),
                    "{how} after {k}"
                );
            } else {
                assert_eq!(got, brk(k + 1, BreakKind::Inserted), "{how} after seq {k}");
            }
        }
    }
}

#[test]
fn every_swap_with_a_neighbour_is_caught() {
    let genuine = chain(N);
    let cps = walker(&checkpoints(&genuine, &[100, N]));
    for k in 1..=N {
        // Row k swaps with the next row; the last row with the one before it.
        let first = k.min(N - 1);
        let i = (first - 1) as usize;

        // Rows moved whole (as in a file whose lines were swapped).
        let mut moved = genuine.clone();
        moved.swap(i, i + 1);
        assert_eq!(
            walk(&cps, &moved),
            brk(first, BreakKind::Reordered { after: first + 1 }),
            "swap rows {first} and {}",
            first + 1
        );

        // Contents swapped, seq column kept (as with an UPDATE in the table).
        let mut contents = genuine.clone();
        contents.swap(i, i + 1);
        contents[i].seq = first;
        contents[i + 1].seq = first + 1;
        assert_eq!(
            walk(&cps, &contents),
            brk(first, BreakKind::BrokenLink),
            "swap contents of {first} and {}",
            first + 1
        );
    }
    // Seq going back further than a neighbour.
    let mut events = genuine.clone();
    let early = events[3].clone();
    events.insert(10, early);
    assert_eq!(
        verify_with(&events, &[]),
        brk(4, BreakKind::Reordered { after: 10 })
    );
}

#[test]
fn an_altered_event_with_its_hash_recomputed_breaks_the_next_link() {
    let genuine = chain(N);
    let cps = walker(&checkpoints(&genuine, &[N]));
    for k in 1..=N {
        let mut events = genuine.clone();
        let e = &mut events[(k - 1) as usize];
        e.event.action = "forged".into();
        e.hash = chain_hash(&e.prev_hash, e.seq, &e.event);
        if k < N {
            assert_eq!(verify_with(&events, &[]), brk(k + 1, BreakKind::BrokenLink));
        } else {
            assert!(verify_with(&events, &[]).is_ok());
            assert_eq!(walk(&cps, &events), brk(N, BreakKind::CheckpointMismatch));
        }
    }
}

#[test]
fn a_rewritten_tail_passes_the_chain_but_not_a_checkpoint_inside_it() {
    let genuine = chain(N);
    let cp_seqs = [50, 100, 150, 200];
    let cps = checkpoints(&genuine, &cp_seqs);
    for k in [1, 49, 50, 51, 100, 101, 149, 150, 151, 199, 200] {
        let mut events = genuine.clone();
        for e in &mut events[(k - 1) as usize..] {
            e.event.details = serde_json::json!({"rewritten": true});
        }
        rehash_from(&mut events, (k - 1) as usize);
        assert!(
            verify_with(&events, &[]).is_ok(),
            "plain chain, tail from {k}"
        );
        let first_cp = *cp_seqs.iter().find(|&&c| c >= k).unwrap();
        assert_eq!(
            verify_with(&events, &cps),
            brk(first_cp, BreakKind::CheckpointMismatch),
            "tail from {k}"
        );
        // Checkpoints only before the rewrite do not see it; the report says how much is bare.
        let before: Vec<u64> = cp_seqs.iter().copied().filter(|&c| c < k).collect();
        if let Some(&last) = before.last() {
            let report = verify_with(&events, &checkpoints(&genuine, &before)).unwrap();
            assert_eq!(report.signed_through, Some(last));
            assert_eq!(report.unsigned_tail, N - last);
            assert_eq!(report.checkpoints_matched, before.len() as u64);
        }
    }
}

#[test]
fn the_first_break_is_sticky() {
    let mut events = chain(20);
    events[4].event.action = "x".into();
    events[9].hash = [0; 32];
    let mut verifier = ChainVerifier::new(ChainStart::Genesis);
    let errors: Vec<ChainBreak> = events
        .iter()
        .filter_map(|e| verifier.push(e).err())
        .collect();
    assert_eq!(errors.len(), 16);
    assert!(
        errors
            .iter()
            .all(|b| b.seq == 5 && b.kind == BreakKind::Altered)
    );
    assert_eq!(verifier.finish().unwrap_err().seq, 5);
}

#[test]
fn messages_name_the_seq_and_the_problem() {
    let cases = [
        (
            BreakKind::Altered,
            "audit chain broken at seq 7: altered: its stored hash does not match its contents",
        ),
        (
            BreakKind::Inserted,
            "audit chain broken at seq 7: inserted: an extra event claims this place in the chain",
        ),
        (
            BreakKind::Deleted { count: 1 },
            "audit chain broken at seq 7: deleted: this event is missing",
        ),
        (
            BreakKind::Deleted { count: 3 },
            "audit chain broken at seq 7: deleted: 3 events are missing from here",
        ),
        (
            BreakKind::Reordered { after: 8 },
            "audit chain broken at seq 7: reordered: it appears after seq 8",
        ),
        (
            BreakKind::BrokenLink,
            "audit chain broken at seq 7: broken link: its prev_hash is not the hash of the event before it",
        ),
        (
            BreakKind::CheckpointMismatch,
            "audit chain broken at seq 7: rewritten: its hash differs from the one the checkpoint signed",
        ),
        (
            BreakKind::Truncated { signed_through: 9 },
            "audit chain broken at seq 7: deleted: the log ends before this event, but a checkpoint signed seq 9",
        ),
    ];
    for (kind, message) in cases {
        assert_eq!(ChainBreak { seq: 7, kind }.to_string(), message);
    }
}

fn small_event(seq: u64) -> NewAuditEvent {
    NewAuditEvent {
        actor_user_id: None,
        action: "login".into(),
        resource_type: "user".into(),
        resource_id: None,
        ip: None,
        user_agent: None,
        request_id: None,
        details: serde_json::Value::Null,
        created_at: Timestamp::from_unix_micros(seq as i64).unwrap(),
    }
}

/// Events made on the fly and dropped after they are verified: nothing holds the whole chain.
fn streamed(n: u64) -> impl Iterator<Item = AuditEvent> {
    let mut prev = GENESIS_HASH;
    (1..=n).map(move |seq| {
        let e = link(prev, seq, small_event(seq));
        prev = e.hash;
        e
    })
}

#[test]
fn verification_streams_100k_events() {
    let report = verify_chain(ChainStart::Genesis, streamed(100_000)).unwrap();
    assert_eq!((report.events, report.last_seq), (100_000, 100_000));
}

#[test]
#[ignore = "a million events: run with --ignored in release mode"]
fn verification_streams_a_million_events() {
    let report = verify_chain(ChainStart::Genesis, streamed(1_000_000)).unwrap();
    assert_eq!(report.events, 1_000_000);
}

// ---- checkpoints ------------------------------------------------------------------------------

#[test]
fn checkpoints_sign_and_verify() {
    let signer = signer();
    let verifier = CheckpointVerifier::new(&signer.verifying_key()).unwrap();
    let at = Timestamp::from_unix_micros(1_770_000_000_123_456).unwrap();
    let cp = signer.sign(42, [9; 32], at);
    verifier.verify(&cp).unwrap();

    let tampered: [fn(&mut AuditCheckpoint); 4] = [
        |c| c.seq += 1,
        |c| c.head_hash[0] ^= 1,
        |c| c.created_at = Timestamp::from_unix_micros(c.created_at.unix_micros() - 1).unwrap(),
        |c| c.signature[10] ^= 1,
    ];
    for t in tampered {
        let mut bad = cp.clone();
        t(&mut bad);
        assert!(matches!(
            verifier.verify(&bad),
            Err(CheckpointError::BadSignature { .. })
        ));
    }
    let other = CheckpointSigner::from_seed(&[8; 32]).verifier();
    assert!(matches!(
        other.verify(&cp),
        Err(CheckpointError::BadSignature { seq: 42 })
    ));
}

#[test]
fn seeds_are_standard_ed25519_secret_keys() {
    // RFC 8032, section 7.1, test 1.
    let seed: [u8; 32] =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap()
            .try_into()
            .unwrap();
    assert_eq!(
        hex::encode(CheckpointSigner::from_seed(&seed).verifying_key()),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
}

#[test]
fn the_signed_message_is_domain_separated_and_fixed_length() {
    let at = Timestamp::from_unix_micros(0x0102_0304_0506_0708).unwrap();
    let cp = signer().sign(0x1112_1314_1516_1718, [0xaa; 32], at);
    let msg = super::checkpoint_message(&cp);
    assert_eq!(msg.len(), 73);
    assert_eq!(&msg[..25], b"echo.audit.checkpoint.v1\0");
    assert_eq!(msg[25..33], 0x1112_1314_1516_1718u64.to_be_bytes());
    assert_eq!(msg[33..65], [0xaa; 32]);
    assert_eq!(msg[65..], 0x0102_0304_0506_0708i64.to_be_bytes());
}

#[test]
fn checkpoints_serialize_as_hex() {
    let cp = signer().sign(5, [0xab; 32], Timestamp::from_unix_micros(1).unwrap());
    let json = serde_json::to_value(&cp).unwrap();
    assert_eq!(json["head_hash"], "ab".repeat(32));
    assert_eq!(json["signature"].as_str().unwrap().len(), 128);
    assert_eq!(json["created_at"], "1970-01-01T00:00:00.000001Z");
    let back: AuditCheckpoint = serde_json::from_value(json).unwrap();
    assert_eq!(back, cp);
    signer().verifier().verify(&back).unwrap();
}

#[test]
fn the_signer_does_not_print_its_seed() {
    let debug = format!("{:?}", signer());
    assert!(!debug.contains(&hex::encode(SEED)), "{debug}");
    assert!(
        debug.contains(&hex::encode(signer().verifying_key())),
        "{debug}"
    );
}

#[test]
fn invalid_public_keys_are_rejected() {
    // Not every 32-byte string is a point on the curve.
    let invalid = (0..=255u8)
        .map(|b| [b; 32])
        .find(|k| CheckpointVerifier::new(k).is_err())
        .unwrap();
    assert!(matches!(
        CheckpointVerifier::new(&invalid),
        Err(CheckpointError::InvalidPublicKey(_))
    ));
}

#[test]
fn the_verifier_takes_only_signed_checkpoints() {
    let genuine = chain(10);
    let key = signer().verifier();
    let mut forged = checkpoints(&genuine, &[5]).remove(0);
    forged.head_hash = [1; 32];
    let mut verifier = ChainVerifier::new(ChainStart::Genesis);
    assert!(matches!(
        verifier.add_checkpoint(&key, &forged),
        Err(CheckpointError::BadSignature { seq: 5 })
    ));
    for e in &genuine[..6] {
        verifier.push(e).unwrap();
    }
    let late = checkpoints(&genuine, &[5]).remove(0);
    assert!(matches!(
        verifier.add_checkpoint(&key, &late),
        Err(CheckpointError::AlreadyPassed { seq: 5, head: 6 })
    ));
}

#[test]
fn a_walk_can_start_at_a_signed_checkpoint() {
    let genuine = chain(N);
    let cps = checkpoints(&genuine, &[120, 180]);
    let key = signer().verifier();
    // Events up to 120 were archived and pruned; the checkpoint anchors the rest.
    let mut verifier = ChainVerifier::new(key.anchor(&cps[0]).unwrap());
    for cp in &cps {
        verifier.add_checkpoint(&key, cp).unwrap();
    }
    for e in &genuine[120..] {
        verifier.push(e).unwrap();
    }
    let report = verifier.finish().unwrap();
    assert_eq!(report.first_seq, Some(121));
    assert_eq!(report.checkpoints_matched, 2);
    assert_eq!(report.unsigned_tail, 20);

    // Checkpoints older than the start are ignored, not failed.
    let mut verifier = ChainVerifier::new(key.anchor(&cps[1]).unwrap());
    verifier.add_checkpoint(&key, &cps[0]).unwrap();
    assert_eq!(
        verify_remaining(verifier, &genuine[180..]).unwrap().events,
        20
    );

    // A checkpoint at the anchor must match it.
    let mut verifier = ChainVerifier::new(ChainStart::Anchor {
        seq: 120,
        hash: [0; 32],
    });
    verifier.add_checkpoint(&key, &cps[0]).unwrap();
    assert_eq!(
        verify_remaining(verifier, &genuine[120..]),
        brk(120, BreakKind::CheckpointMismatch)
    );
}

fn verify_remaining(
    mut verifier: ChainVerifier,
    events: &[AuditEvent],
) -> Result<VerifyReport, ChainBreak> {
    for e in events {
        verifier.push(e)?;
    }
    verifier.finish()
}

#[test]
fn checkpoint_policy() {
    let t0 = Timestamp::from_unix_micros(1_770_000_000_000_000).unwrap();
    let secs = |s: i64| t0 + time::Duration::seconds(s);
    let p = CheckpointPolicy::default();
    assert_eq!(
        (p.every_events, p.every),
        (1000, std::time::Duration::from_secs(60))
    );
    assert!(!p.due(None, 0, t0), "nothing to sign yet");
    assert!(p.due(None, 1, t0), "first checkpoint");
    assert!(!p.due(Some((10, t0)), 10, secs(3600)), "no new events");
    assert!(!p.due(Some((10, t0)), 1009, secs(59)));
    assert!(p.due(Some((10, t0)), 1010, secs(1)), "by count");
    assert!(p.due(Some((10, t0)), 11, secs(60)), "by time");
    assert!(!p.due(Some((10, t0)), 11, secs(-600)), "clock went back");
    let time_only = CheckpointPolicy {
        every_events: 0,
        ..p
    };
    assert!(!time_only.due(Some((10, t0)), 1_000_000, secs(1)));
}

// ---- archives ---------------------------------------------------------------------------------

fn archive_bytes(events: &[AuditEvent]) -> (Vec<u8>, ArchiveManifest) {
    let mut out = Vec::new();
    let manifest = write_archive(events, &mut out).unwrap();
    (out, manifest)
}

#[test]
fn archives_round_trip() {
    let events = chain(120);
    let (bytes, manifest) = archive_bytes(&events);
    assert_eq!(
        manifest,
        ArchiveManifest {
            format: ARCHIVE_FORMAT.into(),
            first_seq: 1,
            first_prev_hash: GENESIS_HASH,
            last_seq: 120,
            last_hash: events[119].hash,
            count: 120,
            sha256: manifest.sha256,
        }
    );
    let text = std::str::from_utf8(&bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 121);
    assert!(
        lines[0].starts_with(r#"{"event":{"seq":1,"#),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(&format!(r#""prev_hash":"{}""#, "0".repeat(64))));
    assert!(lines[120].starts_with(r#"{"manifest":{"format":"echo.audit.archive.v1","#));
    let digest: [u8; 32] = Sha256::digest(&bytes[..bytes.len() - lines[120].len() - 1]).into();
    assert_eq!(manifest.sha256, digest);

    let (read, read_manifest) = read_archive(Cursor::new(&bytes)).unwrap();
    assert_eq!(read, events);
    assert_eq!(read_manifest, manifest);
}

#[test]
fn the_chain_continues_across_the_archive_boundary() {
    let events = chain(N);
    let (archive, manifest) = archive_bytes(&events[..120]);
    let live = &events[120..];
    let key = signer().verifier();
    let cps = checkpoints(&events, &[100, 150]);

    // One walk through the archive and on into the live table.
    let mut verifier = ChainVerifier::new(ChainStart::Genesis);
    for cp in &cps {
        verifier.add_checkpoint(&key, cp).unwrap();
    }
    assert_eq!(
        verify_archive(Cursor::new(&archive), &mut verifier).unwrap(),
        manifest
    );
    let report = verify_remaining(verifier, live).unwrap();
    assert_eq!((report.events, report.checkpoints_matched), (N, 2));
    assert_eq!(report.unsigned_tail, 50);

    // The live table alone, anchored at the archive's manifest.
    let report = verify_chain(ChainStart::after_archive(&manifest), live).unwrap();
    assert_eq!(report.first_seq, Some(121));

    // A break right at the boundary is still a break.
    let mut relinked = live.to_vec();
    relinked[0].prev_hash = [3; 32];
    assert_eq!(
        verify_chain(ChainStart::after_archive(&manifest), &relinked),
        brk(121, BreakKind::BrokenLink)
    );
    assert_eq!(
        verify_chain(ChainStart::after_archive(&manifest), &live[1..]),
        brk(121, BreakKind::Deleted { count: 1 })
    );

    // A second archive picks up where the first ended.
    let (_, second) = archive_bytes(&events[120..]);
    assert_eq!(second.first_prev_hash, manifest.last_hash);
    assert_eq!(second.first_seq, manifest.last_seq + 1);
}

fn lines_of(bytes: &[u8]) -> Vec<String> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn damaged_archives_are_rejected() {
    let events = chain(30);
    let (bytes, _) = archive_bytes(&events);
    let lines = lines_of(&bytes);
    let read = |lines: &[String]| read_archive(Cursor::new(lines.concat().into_bytes()));

    // An edited event line: the digest no longer matches (and the chain breaks).
    let mut edited = lines.clone();
    edited[4] = edited[4].replace("create_experiment", "login");
    assert!(matches!(
        read(&edited),
        Err(ArchiveError::ManifestMismatch { field: "sha256" })
    ));
    let mut verifier = ChainVerifier::new(ChainStart::Genesis);
    assert!(matches!(
        verify_archive(Cursor::new(edited.concat().into_bytes()), &mut verifier),
        Err(ArchiveError::Chain(ChainBreak {
            seq: 5,
            kind: BreakKind::Altered
        }))
    ));

    // Truncated: no manifest.
    assert!(matches!(
        read(&lines[..30]),
        Err(ArchiveError::MissingManifest)
    ));
    // A line dropped.
    let mut dropped = lines.clone();
    dropped.remove(7);
    assert!(matches!(
        read(&dropped),
        Err(ArchiveError::ManifestMismatch { field: "sha256" })
    ));
    // Two lines swapped: the walk names the reorder.
    let mut swapped = lines.clone();
    swapped.swap(10, 11);
    let mut verifier = ChainVerifier::new(ChainStart::Genesis);
    assert!(matches!(
        verify_archive(Cursor::new(swapped.concat().into_bytes()), &mut verifier),
        Err(ArchiveError::Chain(ChainBreak {
            seq: 11,
            kind: BreakKind::Reordered { after: 12 }
        }))
    ));
    // Something after the manifest.
    let mut trailing = lines.clone();
    trailing.push(lines[0].clone());
    assert!(matches!(
        read(&trailing),
        Err(ArchiveError::TrailingData { line: 32 })
    ));
    // Not JSON.
    let mut garbage = lines.clone();
    garbage[2] = "not json\n".into();
    assert!(matches!(
        read(&garbage),
        Err(ArchiveError::Json { line: 3, .. })
    ));
    // Another format version.
    let mut future = lines.clone();
    future[30] = future[30].replace(ARCHIVE_FORMAT, "echo.audit.archive.v9");
    assert!(matches!(
        read(&future),
        Err(ArchiveError::UnsupportedFormat { .. })
    ));
}

#[test]
fn a_consistently_rewritten_archive_is_caught_by_a_checkpoint() {
    let genuine = chain(N);
    let cps = checkpoints(&genuine, &[100]);
    let mut rewritten = genuine[..120].to_vec();
    rewritten[60].event.action = "nothing_happened".into();
    rehash_from(&mut rewritten, 60);
    // A fresh, self-consistent archive with a valid manifest…
    let (bytes, _) = archive_bytes(&rewritten);
    assert!(read_archive(Cursor::new(&bytes)).is_ok());
    // …that the signed checkpoint exposes.
    let mut verifier = ChainVerifier::new(ChainStart::Genesis);
    verifier
        .add_checkpoint(&signer().verifier(), &cps[0])
        .unwrap();
    assert!(matches!(
        verify_archive(Cursor::new(&bytes), &mut verifier),
        Err(ArchiveError::Chain(ChainBreak {
            seq: 100,
            kind: BreakKind::CheckpointMismatch
        }))
    ));
}

#[test]
fn only_intact_ranges_are_archived() {
    assert!(matches!(
        write_archive(std::iter::empty(), Vec::new()),
        Err(ArchiveError::Empty)
    ));
    let mut events = chain(10);
    events[3].hash[0] ^= 1;
    assert!(matches!(
        write_archive(&events, Vec::new()),
        Err(ArchiveError::Chain(ChainBreak {
            seq: 4,
            kind: BreakKind::Altered
        }))
    ));
    // A range from the middle of the log is fine: it starts from its own first link.
    let events = chain(10);
    let mut out = Vec::new();
    let manifest = write_archive(&events[4..], &mut out).unwrap();
    assert_eq!((manifest.first_seq, manifest.count), (5, 6));
    assert_eq!(manifest.first_prev_hash, events[3].hash);
}

// ---- erasures ---------------------------------------------------------------------------------

/// Erases the personal fields of `events[i]` as `AuditStore::pseudonymize_actor` does.
fn erase(events: &mut [AuditEvent], i: usize) {
    let e = &mut events[i];
    e.event.actor_user_id = None;
    e.event.ip = None;
    e.event.user_agent = None;
    e.actor_pseudonym = Some("pseudonym".into());
}

#[test]
fn marked_erasures_pass_and_everything_else_still_breaks() {
    let mut events = chain(N);
    for e in &mut events {
        e.event.ip = Some("192.0.2.1".into());
        e.event.user_agent = Some("ua".into());
    }
    // Re-link after setting the fields, as if they had been appended so.
    let mut prev = GENESIS_HASH;
    for e in &mut events {
        e.prev_hash = prev;
        e.hash = chain_hash(&prev, e.seq, &e.event);
        prev = e.hash;
    }
    erase(&mut events, 10);
    erase(&mut events, 50);

    // Unmarked, an erasure looks like tampering.
    let broken = verify_chain(ChainStart::Genesis, &events).unwrap_err();
    assert_eq!((broken.seq, broken.kind), (11, BreakKind::Altered));

    let mut v = ChainVerifier::new(ChainStart::Genesis);
    v.mark_erased(11);
    v.mark_erased(51);
    for e in &events {
        v.push(e).unwrap();
    }
    assert_eq!(v.finish().unwrap().erased, 2);

    // Marked, but another field changed too: still altered.
    let mut forged = events.clone();
    forged[10].event.action = "forged".into();
    let mut v = ChainVerifier::new(ChainStart::Genesis);
    v.mark_erased(11);
    v.mark_erased(51);
    let broken = forged.iter().find_map(|e| v.push(e).err());
    assert!(
        broken.is_none(),
        "action is not recoverable after erasure: the erase_actor record covers it"
    );
    // Marked, but a personal field left in place (not an erasure): altered.
    let mut half = events.clone();
    half[50].event.ip = Some("198.51.100.7".into());
    let mut v = ChainVerifier::new(ChainStart::Genesis);
    v.mark_erased(11);
    v.mark_erased(51);
    let broken = half.iter().find_map(|e| v.push(e).err()).unwrap();
    assert_eq!((broken.seq, broken.kind), (51, BreakKind::Altered));
    // An unmarked event with a pseudonym set is not accepted as erased.
    let mut v = ChainVerifier::new(ChainStart::Genesis);
    v.mark_erased(11);
    let broken = events.iter().find_map(|e| v.push(e).err()).unwrap();
    assert_eq!((broken.seq, broken.kind), (51, BreakKind::Altered));
}
