//! Queue tickets: a retry that presents one keeps its place. A ticket names the arrival
//! sequence it stands for, when it was issued, and the last position it was told, signed
//! with HMAC-SHA256 under a server secret so it cannot be forged or edited.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the MAC kept in a ticket: 128 bits is far past guessing.
const MAC_BYTES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Arrival order: lower is served first.
    pub seq: u64,
    pub issued_at_ms: u64,
    /// The position last reported for this ticket; reported positions never go up.
    pub position: u32,
}

pub struct TicketSigner {
    secret: [u8; 32],
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl TicketSigner {
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(payload);
        mac
    }

    pub fn sign(&self, ticket: Ticket) -> String {
        let mut payload = Vec::with_capacity(20);
        payload.extend_from_slice(&ticket.seq.to_be_bytes());
        payload.extend_from_slice(&ticket.issued_at_ms.to_be_bytes());
        payload.extend_from_slice(&ticket.position.to_be_bytes());
        let tag = self.mac(&payload).finalize().into_bytes();
        format!("{}.{}", hex(&payload), hex(&tag[..MAC_BYTES]))
    }

    /// The ticket, if it is well formed, signed by us and younger than `ttl_ms`.
    pub fn verify(&self, text: &str, now_ms: u64, ttl_ms: u64) -> Option<Ticket> {
        let (payload, tag) = text.split_once('.')?;
        let payload = unhex(payload)?;
        let tag = unhex(tag)?;
        if payload.len() != 20 || tag.len() != MAC_BYTES {
            return None;
        }
        self.mac(&payload).verify_truncated_left(&tag).ok()?;
        let seq = u64::from_be_bytes(payload[0..8].try_into().ok()?);
        let issued_at_ms = u64::from_be_bytes(payload[8..16].try_into().ok()?);
        let position = u32::from_be_bytes(payload[16..20].try_into().ok()?);
        if now_ms.saturating_sub(issued_at_ms) > ttl_ms {
            return None;
        }
        Some(Ticket {
            seq,
            issued_at_ms,
            position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_and_forgeries_or_old_tickets_fail() {
        let signer = TicketSigner::new([7; 32]);
        let ticket = Ticket {
            seq: 42,
            issued_at_ms: 1_000,
            position: 9,
        };
        let text = signer.sign(ticket);
        assert_eq!(signer.verify(&text, 2_000, 60_000), Some(ticket));
        assert_eq!(signer.verify(&text, 100_000, 60_000), None, "expired");
        let other = TicketSigner::new([8; 32]);
        assert_eq!(
            other.verify(&text, 2_000, 60_000),
            None,
            "another server's secret"
        );
        let (payload, tag) = text.split_once('.').unwrap();
        let earlier = format!("{}{}", "0".repeat(16), &payload[16..]);
        assert_eq!(
            signer.verify(&format!("{earlier}.{tag}"), 2_000, 60_000),
            None,
            "edited seq"
        );
        assert_eq!(signer.verify("garbage", 2_000, 60_000), None);
        assert_eq!(signer.verify("zz.zz", 2_000, 60_000), None);
    }
}
