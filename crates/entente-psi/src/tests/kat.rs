//! RFC 9497 Appendix A.1.2, ristretto255-SHA512, VOPRF mode: the known answers, through the
//! `voprf` crate and through this crate's holder.
//!
//! The vectors are those of RFC 9497 (https://www.rfc-editor.org/rfc/rfc9497#appendix-A.1.2),
//! as the `voprf` 0.5.0 crate carries them in `src/tests/cfrg_vectors.rs`.

use super::rng;
use crate::key::Suite;
use crate::wire::{Limits, Mode, QueryMessage};
use crate::{HolderKey, PreparedSet};
use rand_core::{CryptoRng, RngCore};
use voprf::{BlindedElement, EvaluationElement, Group, Proof, VoprfClient, VoprfServer};

const SEED: &str = "a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3";
const KEY_INFO: &str = "74657374206b6579";
const SK_SM: &str = "e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909";
const PK_SM: &str = "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e";

struct Vector {
    inputs: &'static [&'static str],
    blinds: &'static [&'static str],
    blinded: &'static [&'static str],
    evaluated: &'static [&'static str],
    proof: &'static str,
    proof_random_scalar: &'static str,
    outputs: &'static [&'static str],
}

const VECTORS: [Vector; 3] = [
    // A.1.2.1. Test Vector 1, Batch Size 1
    Vector {
        inputs: &["00"],
        blinds: &["64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706"],
        blinded: &["863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945"],
        evaluated: &["aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e"],
        proof: "ddef93772692e535d1a53903db24367355cc2cc78de93b3be5a8ffcc6985dd066d4346421d17bf5117a2a1ff0fcb2a759f58a539dfbe857a40bce4cf49ec600d",
        proof_random_scalar: "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e",
        outputs: &[
            "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7da4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c",
        ],
    },
    // A.1.2.2. Test Vector 2, Batch Size 1
    Vector {
        inputs: &["5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"],
        blinds: &["64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706"],
        blinded: &["cc0b2a350101881d8a4cba4c80241d74fb7dcbfde4a61fde2f91443c2bf9ef0c"],
        evaluated: &["60a59a57208d48aca71e9e850d22674b611f752bed48b36f7a91b372bd7ad468"],
        proof: "401a0da6264f8cf45bb2f5264bc31e109155600babb3cd4e5af7d181a2c9dc0a67154fabf031fd936051dec80b0b6ae29c9503493dde7393b722eafdf5a50b02",
        proof_random_scalar: "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e",
        outputs: &[
            "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6",
        ],
    },
    // A.1.2.3. Test Vector 3, Batch Size 2
    Vector {
        inputs: &["00", "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"],
        blinds: &[
            "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706",
            "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e",
        ],
        blinded: &[
            "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945",
            "90a0145ea9da29254c3a56be4fe185465ebb3bf2a1801f7124bbbadac751e654",
        ],
        evaluated: &[
            "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e",
            "cc5ac221950a49ceaa73c8db41b82c20372a4c8d63e5dded2db920b7eee36a2a",
        ],
        proof: "cc203910175d786927eeb44ea847328047892ddf8590e723c37205cb74600b0a5ab5337c8eb4ceae0494c2cf89529dcf94572ed267473d567aeed6ab873dee08",
        proof_random_scalar: "419c4f4f5052c53c45f3da494d2b67b220d02118e0857cdbcf037f9ea84bbe0c",
        outputs: &[
            "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7da4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c",
            "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6",
        ],
    },
];

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// An RNG that yields the proof's random scalar: `random_scalar` reads 64 bytes and reduces
/// them; the scalar's 32 bytes followed by zeros reduce to the scalar.
struct ProofScalar(Vec<u8>);

impl RngCore for ProofScalar {
    fn next_u32(&mut self) -> u32 {
        unreachable!()
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
        dest[..self.0.len()].copy_from_slice(&self.0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for ProofScalar {}

#[test]
fn key_derivation_matches_rfc9497() {
    let server = VoprfServer::<Suite>::new_from_seed(&h(SEED), &h(KEY_INFO)).unwrap();
    assert_eq!(hex::encode(&server.serialize()[..32]), SK_SM);
    assert_eq!(hex::encode(Suite::serialize_elem(server.get_public_key())), PK_SM);
    let key = HolderKey::from_bytes(&h(SK_SM)).unwrap();
    assert_eq!(hex::encode(key.public_key().to_bytes()), PK_SM);
    assert_eq!(hex::encode(*key.to_bytes()), SK_SM);
}

#[test]
fn blind_evaluate_prove_and_finalize_match_rfc9497() {
    let server = VoprfServer::<Suite>::new_with_key(&h(SK_SM)).unwrap();
    for (n, v) in VECTORS.iter().enumerate() {
        let inputs: Vec<Vec<u8>> = v.inputs.iter().map(|i| h(i)).collect();
        let mut clients = Vec::new();
        let mut blinded = Vec::new();
        for ((input, blind), want) in inputs.iter().zip(v.blinds).zip(v.blinded) {
            let blind = Suite::deserialize_scalar(&h(blind)).unwrap();
            let r = VoprfClient::<Suite>::deterministic_blind_unchecked(input, blind).unwrap();
            assert_eq!(hex::encode(r.message.serialize()), *want, "vector {n}: blinded element");
            // This crate's HashToGroup (used by cardinality mode) is the RFC's.
            let ours = crate::derive::hash_to_group(input).unwrap() * blind;
            assert_eq!(
                hex::encode(Suite::serialize_elem(ours)),
                *want,
                "vector {n}: hash to group"
            );
            clients.push(r.state);
            blinded.push(r.message);
        }
        let prepared: Vec<_> = server.batch_blind_evaluate_prepare(blinded.iter()).collect();
        let mut rng = ProofScalar(h(v.proof_random_scalar));
        let result =
            server.batch_blind_evaluate_finish(&mut rng, blinded.iter(), &prepared).unwrap();
        let evaluated: Vec<EvaluationElement<Suite>> = result.messages.collect();
        let got: Vec<String> = evaluated.iter().map(|e| hex::encode(e.serialize())).collect();
        assert_eq!(got, v.evaluated, "vector {n}: evaluation elements");
        assert_eq!(hex::encode(result.proof.serialize()), v.proof, "vector {n}: proof");
        let proof = Proof::<Suite>::deserialize(&h(v.proof)).unwrap();
        let outputs: Vec<String> = VoprfClient::batch_finalize(
            &inputs,
            &clients,
            &evaluated,
            &proof,
            server.get_public_key(),
        )
        .unwrap()
        .map(|o| hex::encode(o.unwrap()))
        .collect();
        assert_eq!(outputs, v.outputs, "vector {n}: outputs");
        // The holder's own evaluation of its set (no blinding) gives the same outputs.
        for (input, want) in inputs.iter().zip(v.outputs) {
            assert_eq!(hex::encode(server.evaluate(input).unwrap()), *want, "vector {n}: evaluate");
        }
    }
}

#[test]
fn the_holder_evaluates_a_query_as_rfc9497_says() {
    let key = HolderKey::from_bytes(&h(SK_SM)).unwrap();
    let set = key.prepare_set(Mode::Labelled, &[], 10, &mut rng(0), |_, _| {}).unwrap();
    for v in &VECTORS {
        let elements = v
            .blinded
            .iter()
            .map(|b| {
                BlindedElement::<Suite>::deserialize(&h(b)).unwrap();
                <[u8; 32]>::try_from(h(b).as_slice()).unwrap()
            })
            .collect();
        let query = QueryMessage { mode: Mode::Labelled, epoch: key.epoch(), elements };
        let mut rng = ProofScalar(h(v.proof_random_scalar));
        let e = key.evaluate(&set, &query, &Limits::default(), &mut rng).unwrap();
        let got: Vec<String> = e.evaluations.iter().map(hex::encode).collect();
        assert_eq!(got, v.evaluated);
        assert_eq!(hex::encode(e.proof), v.proof);
    }
}

#[test]
fn an_empty_set_is_still_a_set() {
    let key = HolderKey::generate(&mut rng(1)).unwrap();
    let set: PreparedSet =
        key.prepare_set(Mode::Labelled, &[], 10, &mut rng(2), |_, _| {}).unwrap();
    assert!(set.is_empty());
    assert_eq!(set.chunks(10).len(), 1);
}
