#![allow(clippy::unwrap_used)]

use super::*;

fn outcome(
    result: Result<WebhookResponse, TransportError>,
    attempts_left: bool,
) -> (AttemptOutcome, Option<u16>) {
    classify(&result, attempts_left)
}

fn answered(status: u16) -> Result<WebhookResponse, TransportError> {
    Ok(WebhookResponse { status })
}

#[test]
fn two_hundreds_deliver() {
    for status in [200, 201, 202, 204, 299] {
        assert_eq!(
            outcome(answered(status), true),
            (AttemptOutcome::Delivered { status }, Some(status))
        );
        assert_eq!(
            outcome(answered(status), false).0,
            AttemptOutcome::Delivered { status }
        );
    }
}

#[test]
fn timeouts_server_errors_and_throttling_retry_until_the_last_attempt() {
    for status in [408, 425, 429, 500, 502, 503, 504, 599] {
        let (o, s) = outcome(answered(status), true);
        assert_eq!(
            o,
            AttemptOutcome::Retry {
                reason: format!("receiver answered {status}")
            }
        );
        assert_eq!(s, Some(status));
        assert_eq!(
            outcome(answered(status), false).0,
            AttemptOutcome::GaveUp {
                reason: format!("receiver answered {status} (last attempt)")
            }
        );
    }
    assert_eq!(
        outcome(Err(TransportError::Timeout), true),
        (
            AttemptOutcome::Retry {
                reason: "timed out".to_owned()
            },
            None
        )
    );
    assert_eq!(
        outcome(Err(TransportError::Connect("reset".to_owned())), false).0,
        AttemptOutcome::GaveUp {
            reason: "connection failed: reset (last attempt)".to_owned()
        }
    );
}

#[test]
fn refusals_and_forbidden_addresses_give_up_at_once() {
    for status in [100, 301, 302, 400, 401, 403, 404, 410, 422] {
        assert_eq!(
            outcome(answered(status), true),
            (
                AttemptOutcome::GaveUp {
                    reason: format!("receiver answered {status} (not retried)")
                },
                Some(status)
            )
        );
    }
    assert_eq!(
        outcome(
            Err(TransportError::AddressRefused(
                "10.0.0.5 is private".to_owned()
            )),
            true
        ),
        (
            AttemptOutcome::GaveUp {
                reason: "address refused: 10.0.0.5 is private".to_owned()
            },
            None
        )
    );
}

#[test]
fn long_errors_are_cut_on_a_character_boundary() {
    let long = "é".repeat(400);
    let (o, _) = outcome(Err(TransportError::Connect(long)), true);
    let AttemptOutcome::Retry { reason } = o else {
        panic!("{o:?}")
    };
    assert_eq!(reason.chars().count(), 301);
    assert!(reason.ends_with('…'));
}
