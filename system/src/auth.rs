//! Who is calling, and what they may touch.
//!
//! Every request a client sends carries a [`Credential`]: the client's number and a token the
//! platform's [`Authority`] issued it when its accounts were opened. The token is a keyed hash
//! of (run secret, client, the client's network address), so a guessed token fails, and a token
//! replayed from another address (a stolen one) fails too: the transport's sender is part of
//! what is checked, never the request body. Platform services are known by their address alone
//! ([`crate::transport::sent_by`]).
//!
//! What a principal owns comes from the [`Directory`]: the account layout the platform assigned
//! at registration. A client owns its user accounts and its merchant account; system accounts
//! (world, transit) belong to the platform. Idempotency keys live in per-client namespaces
//! (`c{client}-...`), so no one can squat another client's key.

pub mod directory;

pub use directory::Directory;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// Who a request acts for, once authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Principal {
    /// A client (a user with its user accounts and its merchant account).
    Client(u32),
    /// A platform service, known by the address its request came from.
    Platform,
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Client(c) => write!(f, "client-{c}"),
            Principal::Platform => f.write_str("platform"),
        }
    }
}

/// What a client presents with every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub client: u32,
    pub token: u64,
}

/// Why a credential was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("credential of client-{client} is not valid from {from}")]
pub struct BadCredential {
    pub client: u32,
    pub from: String,
}

/// The platform's issuer and verifier of credentials. Every service derives the same one from
/// the run's seed: the secret is the platform's, never sent anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority {
    secret: u64,
}

/// SplitMix64's finalizer: a cheap keyed mix, enough for a simulation (no real crypto needed).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn ip_bits(addr: SocketAddr) -> u64 {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => (u128::from(v6) as u64) ^ 0x6666,
    }
}

impl Authority {
    /// The run's authority: its secret derives from the seed alone.
    pub fn for_run(seed: u64) -> Self {
        Authority {
            secret: mix(seed ^ 0x4155_5448_5345_4352), // "AUTHSECR"
        }
    }

    fn token(&self, client: u32, addr: SocketAddr) -> u64 {
        mix(self.secret ^ mix(u64::from(client) ^ (ip_bits(addr) << 32)))
    }

    /// Issues client `client`, which sends from `addr`, its credential.
    pub fn issue(&self, client: u32, addr: SocketAddr) -> Credential {
        Credential {
            client,
            token: self.token(client, addr),
        }
    }

    /// The client a credential proves, if it was issued to that client at the address the
    /// request came from.
    pub fn verify(&self, credential: &Credential, from: SocketAddr) -> Result<u32, BadCredential> {
        if credential.token == self.token(credential.client, from) {
            Ok(credential.client)
        } else {
            Err(BadCredential {
                client: credential.client,
                from: from.to_string(),
            })
        }
    }
}

/// The namespace prefix of client `client`'s idempotency keys and request ids.
pub fn key_prefix(client: u32) -> String {
    format!("c{client}-")
}

/// Whether `key` lies in client `client`'s namespace.
pub fn key_is_clients(client: u32, key: &str) -> bool {
    let digits = client.to_string();
    key.strip_prefix('c')
        .and_then(|rest| rest.strip_prefix(digits.as_str()))
        .is_some_and(|rest| rest.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 9, 0, last], 9000))
    }

    #[test]
    fn an_issued_credential_verifies_from_its_address_only() {
        let auth = Authority::for_run(7);
        let cred = auth.issue(3, addr(3));
        assert_eq!(auth.verify(&cred, addr(3)), Ok(3));
        // The same port on another host: a replayed (stolen) credential.
        assert!(auth.verify(&cred, addr(4)).is_err());
        // Another client's number with this token: forged.
        let forged = Credential { client: 4, ..cred };
        assert!(auth.verify(&forged, addr(3)).is_err());
        // Another run's authority does not accept it.
        assert!(Authority::for_run(8).verify(&cred, addr(3)).is_err());
    }

    #[test]
    fn guessed_tokens_fail() {
        let auth = Authority::for_run(1);
        for token in 0..10_000 {
            let guess = Credential { client: 2, token };
            assert!(auth.verify(&guess, addr(2)).is_err());
        }
    }

    #[test]
    fn keys_are_namespaced_per_client() {
        assert!(key_is_clients(1, "c1-p7"));
        assert!(key_is_clients(12, "c12-p7"));
        assert!(!key_is_clients(1, "c12-p7"));
        assert!(!key_is_clients(12, "c1-p7"));
        assert!(!key_is_clients(1, "c1"));
        assert!(!key_is_clients(1, "x1-p"));
        assert_eq!(key_prefix(5), "c5-");
    }
}
