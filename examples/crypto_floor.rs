//! The cryptography one SSH connection costs the client, measured on this machine: the floor
//! under `scripts/bench-fanout.sh`'s "client CPU per host". Not a test and not part of the tool.
//!
//!     cargo run --release --example crypto_floor [-- --ms]
//!
//! Per connection a fleetboot client does, with the same crates russh and fleetboot use:
//! one x25519 key pair and one x25519 agreement (curve25519-sha256 key exchange), one Ed25519
//! verification (the server's signature over the exchange hash), one Ed25519 signature (the
//! public-key authentication request) and SHA-256 over about 4 KiB (the exchange hash and the
//! key derivation). Packet encryption (a few hundred bytes of ChaCha20-Poly1305) is left out:
//! it is a few microseconds. Each figure is the median of 7 batches.
//!
//! `--ms` prints the total alone, in milliseconds, for the benchmark script.

use std::hint::black_box;
use std::time::{Duration, Instant};

use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{Signer, SigningKey, Verifier};
use sha2::{Digest, Sha256};

const BATCH: u32 = 500;

/// The median over 7 batches of the time one call of `op` takes.
fn per_op(mut op: impl FnMut(u32)) -> Duration {
    let mut batches: Vec<Duration> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for i in 0..BATCH {
                op(i);
            }
            start.elapsed() / BATCH
        })
        .collect();
    batches.sort();
    batches[3]
}

/// A different 32-byte secret for each iteration, so no result can be reused.
fn secret(i: u32) -> [u8; 32] {
    let mut bytes = [0x5a; 32];
    bytes[..4].copy_from_slice(&i.to_le_bytes());
    bytes
}

fn main() {
    let peer = MontgomeryPoint::mul_base_clamped(secret(u32::MAX));
    let keygen = per_op(|i| {
        black_box(MontgomeryPoint::mul_base_clamped(secret(i)));
    });
    let agreement = per_op(|i| {
        black_box(black_box(peer).mul_clamped(secret(i)));
    });
    let signing = SigningKey::from_bytes(&secret(7));
    // The authentication request a client signs is about this long (session ID, user, key blob).
    let request = [0x42u8; 180];
    let sign = per_op(|i| {
        let mut message = request;
        message[..4].copy_from_slice(&i.to_le_bytes());
        black_box(signing.sign(&message));
    });
    let host_key = SigningKey::from_bytes(&secret(8));
    let exchange_hash = [0x17u8; 32];
    let signature = host_key.sign(&exchange_hash);
    let verifying = host_key.verifying_key();
    let verify = per_op(|_| {
        black_box(verifying.verify(black_box(&exchange_hash), &signature)).expect("a valid signature");
    });
    let transcript = vec![0x33u8; 4096];
    let hashing = per_op(|_| {
        black_box(Sha256::digest(black_box(&transcript)));
    });
    let total = keygen + agreement + sign + verify + hashing;
    if std::env::args().any(|a| a == "--ms") {
        println!("{:.3}", total.as_secs_f64() * 1000.0);
        return;
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "crypto per connection: {:.3} ms (x25519 key pair {:.0} µs, x25519 agreement {:.0} µs, \
         Ed25519 signature {:.0} µs, Ed25519 verification {:.0} µs, SHA-256 of 4 KiB {:.1} µs)",
        total.as_secs_f64() * 1000.0,
        us(keygen),
        us(agreement),
        us(sign),
        us(verify),
        us(hashing)
    );
}
