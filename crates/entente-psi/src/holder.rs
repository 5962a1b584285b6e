//! The holder's side of a query: evaluate the asker's blinded elements with the epoch's key
//! and prove it.
//!
//! Labelled mode is RFC 9497 §3.3.2 BlindEvaluate in VOPRF mode over the whole batch, with
//! one batch DLEQ proof (§2.2.1 GenerateProof), in the query's order.
//!
//! Cardinality mode: the asker blinded every element with one scalar `r` (see
//! [`crate::asker::CardinalityQuery`]). The holder computes `E_i = k·B_i`, shuffles them, and
//! proves with a DLEQ proof (the same GenerateProof, on one pair) that `ΣE = k·ΣB` for the
//! published `pk = k·G`. The sum does not depend on the order, so the asker verifies it
//! without learning the shuffle.

use crate::error::{PsiError, WireError};
use crate::key::{ELEMENT_LEN, Elem, HolderKey, PROOF_LEN, Suite, decode_element, encode_element};
use crate::set::{PreparedSet, SetSummary};
use crate::wire::{EvaluationMessage, Limits, Mode, QueryMessage};
use rand_core::{CryptoRng, RngCore};
use voprf::{BlindedElement, Group, VoprfServerBatchEvaluateFinishResult};

impl HolderKey {
    /// Evaluates `query` against the prepared `set` of this key's epoch.
    ///
    /// # Errors
    /// A query or set of another epoch, a query in another mode than the set, an empty query
    /// or one above `limits`, or (cardinality mode) one whose elements sum to the identity.
    pub fn evaluate<R: RngCore + CryptoRng>(
        &self,
        set: &PreparedSet,
        query: &QueryMessage,
        limits: &Limits,
        rng: &mut R,
    ) -> Result<EvaluationMessage, PsiError> {
        self.evaluate_for(&set.summary(), query, limits, rng)
    }

    /// [`HolderKey::evaluate`] with only the prepared set's summary at hand (its epoch, mode,
    /// size and digest): the holder need not keep the set itself to answer queries.
    ///
    /// # Errors
    /// As [`HolderKey::evaluate`].
    pub fn evaluate_for<R: RngCore + CryptoRng>(
        &self,
        set: &SetSummary,
        query: &QueryMessage,
        limits: &Limits,
        rng: &mut R,
    ) -> Result<EvaluationMessage, PsiError> {
        let epoch = self.epoch();
        if set.epoch != epoch {
            return Err(PsiError::EpochMismatch {
                what: "the prepared set",
                found: set.epoch,
                expected: epoch,
            });
        }
        if query.epoch != epoch {
            return Err(PsiError::EpochMismatch {
                what: "the query",
                found: query.epoch,
                expected: epoch,
            });
        }
        if query.mode != set.mode {
            return Err(PsiError::ModeMismatch {
                what: "the query",
                found: query.mode,
                expected: set.mode,
            });
        }
        let n = query.elements.len();
        if n == 0 || n > limits.max_query_elements {
            return Err(WireError::new(
                "query.elements",
                format!("found {n} elements; expected 1 to {}", limits.max_query_elements),
            )
            .into());
        }
        let (evaluations, proof) = match query.mode {
            Mode::Labelled => self.evaluate_labelled(&query.elements, rng)?,
            Mode::Cardinality => self.evaluate_cardinality(&query.elements, rng)?,
        };
        Ok(EvaluationMessage {
            mode: query.mode,
            epoch,
            set_size: set.size,
            set_digest: set.digest,
            evaluations,
            proof,
        })
    }

    fn evaluate_labelled<R: RngCore + CryptoRng>(
        &self,
        elements: &[[u8; ELEMENT_LEN]],
        rng: &mut R,
    ) -> Result<(Vec<[u8; ELEMENT_LEN]>, [u8; PROOF_LEN]), PsiError> {
        let blinded = elements
            .iter()
            .map(|e| BlindedElement::<Suite>::deserialize(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(PsiError::oprf)?;
        let result = self.server.batch_blind_evaluate(rng, &blinded).map_err(PsiError::oprf)?;
        let evaluations = result.messages.iter().map(|m| to_array(&m.serialize())).collect();
        Ok((evaluations, proof_bytes(&result.proof.serialize())))
    }

    fn evaluate_cardinality<R: RngCore + CryptoRng>(
        &self,
        elements: &[[u8; ELEMENT_LEN]],
        rng: &mut R,
    ) -> Result<(Vec<[u8; ELEMENT_LEN]>, [u8; PROOF_LEN]), PsiError> {
        let points = elements
            .iter()
            .enumerate()
            .map(|(i, e)| decode_element(e, &format!("query.elements[{i}]")))
            .collect::<Result<Vec<Elem>, _>>()?;
        let mut evaluated: Vec<[u8; ELEMENT_LEN]> =
            points.iter().map(|p| encode_element(*p * self.sk)).collect();
        shuffle(&mut evaluated, rng);
        let sum = points.iter().fold(Suite::identity_elem(), |acc, p| acc + p);
        let proof = self.prove_sum(sum, rng)?;
        Ok((evaluated, proof))
    }

    /// The DLEQ proof that `k·sum` was made with this key (RFC 9497 §2.2.1 on one pair).
    fn prove_sum<R: RngCore + CryptoRng>(
        &self,
        sum: Elem,
        rng: &mut R,
    ) -> Result<[u8; PROOF_LEN], PsiError> {
        let blinded = BlindedElement::<Suite>::deserialize(&Suite::serialize_elem(sum))
            .map_err(|_| PsiError::Wire(WireError::new("query.elements", "sum to the identity")))?;
        let prepared: Vec<_> =
            self.server.batch_blind_evaluate_prepare(std::iter::once(&blinded)).collect();
        let VoprfServerBatchEvaluateFinishResult { proof, .. } = self
            .server
            .batch_blind_evaluate_finish(rng, std::iter::once(&blinded), &prepared)
            .map_err(PsiError::oprf)?;
        Ok(proof_bytes(&proof.serialize()))
    }
}

fn to_array(bytes: &[u8]) -> [u8; ELEMENT_LEN] {
    let mut a = [0u8; ELEMENT_LEN];
    a.copy_from_slice(bytes);
    a
}

fn proof_bytes(bytes: &[u8]) -> [u8; PROOF_LEN] {
    let mut a = [0u8; PROOF_LEN];
    a.copy_from_slice(bytes);
    a
}

/// A uniform index below `n` (`n > 0`), by rejection sampling.
fn index_below<R: RngCore>(rng: &mut R, n: u64) -> u64 {
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let v = rng.next_u64();
        if v < zone {
            return v % n;
        }
    }
}

/// Fisher-Yates.
pub(crate) fn shuffle<T, R: RngCore>(items: &mut [T], rng: &mut R) {
    for i in (1..items.len()).rev() {
        let j = usize::try_from(index_below(rng, i as u64 + 1)).unwrap_or(i);
        items.swap(i, j);
    }
}
