//! The asker's side: blind the selectors, pad the query, verify the holder's proof, finalise
//! and intersect with the holder's prepared set locally.
//!
//! The two modes are two types, so what the asker can learn is fixed by the type she holds:
//! [`LabelledQuery::finish`] returns the matching selectors and their labels,
//! [`CardinalityQuery::finish`] only a count.

use crate::derive::{self, Label};
use crate::error::{PsiError, WireError};
use crate::key::{
    ELEMENT_LEN, Elem, EpochId, PublicKey, Scalar, Suite, decode_element, encode_element,
};
use crate::selector::Selector;
use crate::set::PreparedSet;
use crate::wire::{EvaluationMessage, Limits, Mode, QueryMessage};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use voprf::{EvaluationElement, Group, Proof, VoprfClient};
use zeroize::{Zeroize, Zeroizing};

/// The state of a query in flight, as the asker keeps it until the holder answers (to be
/// stored encrypted: it holds the selectors and the blinds).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelledState {
    epoch: EpochId,
    selectors: Vec<Selector>,
    /// Hex of the OPRF inputs of the dummies, after the selectors'.
    dummies: Vec<String>,
    /// Hex of each element's VOPRF client state (blind and blinded element).
    clients: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardinalityState {
    epoch: EpochId,
    /// Hex of the blind `r`.
    blind: String,
    /// Hex of the sum of the blinded elements.
    blinded_sum: String,
    elements: usize,
}

fn state_error(what: &str) -> PsiError {
    PsiError::Wire(WireError::new("query state", format!("not a stored {what} query state")))
}

fn unhex(text: &str, what: &str) -> Result<Zeroizing<Vec<u8>>, PsiError> {
    hex::decode(text).map(Zeroizing::new).map_err(|_| state_error(what))
}

/// One of the asker's selectors that the holder holds, with the holder's labels for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The asker's selector.
    pub selector: Selector,
    /// The holder's holdings on it.
    pub labels: Vec<Label>,
}

/// The asker's distinct selectors in order, checked against the padded size.
fn distinct(
    selectors: &[Selector],
    padded: usize,
    limits: &Limits,
) -> Result<Vec<Selector>, PsiError> {
    if padded == 0 || padded > limits.max_query_elements {
        return Err(WireError::new(
            "query.elements",
            format!("a padded size of {padded}; expected 1 to {}", limits.max_query_elements),
        )
        .into());
    }
    let mut seen = BTreeSet::new();
    let distinct: Vec<Selector> = selectors.iter().filter(|s| seen.insert(*s)).cloned().collect();
    if distinct.len() > padded {
        return Err(PsiError::QueryTooLarge { selectors: distinct.len(), padded });
    }
    Ok(distinct)
}

/// The checks common to both modes before an evaluation is used.
fn check_evaluation(
    holder: &PublicKey,
    epoch: EpochId,
    mode: Mode,
    elements: usize,
    evaluation: &EvaluationMessage,
    set: &PreparedSet,
) -> Result<(), PsiError> {
    let expected = holder.epoch();
    for (what, found) in [
        ("the query", epoch),
        ("the evaluation", evaluation.epoch),
        ("the prepared set", set.epoch()),
    ] {
        if found != expected {
            return Err(PsiError::EpochMismatch { what, found, expected });
        }
    }
    for (what, found) in [("the evaluation", evaluation.mode), ("the prepared set", set.mode())] {
        if found != mode {
            return Err(PsiError::ModeMismatch { what, found, expected: mode });
        }
    }
    if evaluation.evaluations.len() != elements {
        return Err(PsiError::CountMismatch {
            found: evaluation.evaluations.len(),
            expected: elements,
        });
    }
    if set.digest() != evaluation.set_digest || set.len() as u64 != evaluation.set_size {
        return Err(PsiError::SetMismatch {
            found: set.digest().to_string(),
            expected: evaluation.set_digest.to_string(),
        });
    }
    Ok(())
}

fn proof_error(e: voprf::Error, holder: &PublicKey) -> PsiError {
    match e {
        voprf::Error::ProofVerification => PsiError::ProofInvalid { epoch: holder.epoch() },
        other => PsiError::oprf(other),
    }
}

/// A labelled query in flight: the blinds of every element, kept until the holder answers.
pub struct LabelledQuery {
    epoch: EpochId,
    selectors: Vec<Selector>,
    /// The OPRF inputs: the selectors' first, then the dummies'.
    inputs: Vec<Vec<u8>>,
    clients: Vec<VoprfClient<Suite>>,
}

impl fmt::Debug for LabelledQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LabelledQuery {{ epoch: {}, elements: {} }}", self.epoch, self.clients.len())
    }
}

impl LabelledQuery {
    /// Blinds `selectors` (repeats dropped) for the holder of `holder`, padded with random
    /// dummy elements to exactly `padded` elements, so the holder learns only the padded size.
    ///
    /// Each element is RFC 9497 §3.3.2 Blind with its own random blind; blinded elements are
    /// uniformly random points, so their order says nothing and dummies look like selectors.
    ///
    /// # Errors
    /// More distinct selectors than `padded`, or `padded` zero or above `limits`.
    pub fn new<R: RngCore + CryptoRng>(
        holder: &PublicKey,
        selectors: &[Selector],
        padded: usize,
        limits: &Limits,
        rng: &mut R,
    ) -> Result<(Self, QueryMessage), PsiError> {
        let selectors = distinct(selectors, padded, limits)?;
        let mut inputs: Vec<Vec<u8>> = selectors.iter().map(Selector::oprf_input).collect();
        while inputs.len() < padded {
            let mut dummy = vec![0u8; 32];
            rng.fill_bytes(&mut dummy);
            inputs.push(dummy);
        }
        let mut clients = Vec::with_capacity(padded);
        let mut elements = Vec::with_capacity(padded);
        for input in &inputs {
            let blind = VoprfClient::<Suite>::blind(input, rng).map_err(PsiError::oprf)?;
            let mut e = [0u8; ELEMENT_LEN];
            e.copy_from_slice(&blind.message.serialize());
            elements.push(e);
            clients.push(blind.state);
        }
        let epoch = holder.epoch();
        let query = QueryMessage { mode: Mode::Labelled, epoch, elements };
        Ok((LabelledQuery { epoch, selectors, inputs, clients }, query))
    }

    /// The query's state, to keep (encrypted: it holds the selectors and the blinds) until
    /// the holder answers; [`LabelledQuery::from_state`] reads it back.
    ///
    /// # Errors
    /// Only those of the JSON writer.
    pub fn to_state(&self) -> Result<Zeroizing<Vec<u8>>, PsiError> {
        let n = self.selectors.len();
        let state = LabelledState {
            epoch: self.epoch,
            selectors: self.selectors.clone(),
            dummies: self.inputs.iter().skip(n).map(hex::encode).collect(),
            clients: self.clients.iter().map(|c| hex::encode(c.serialize())).collect(),
        };
        serde_json::to_vec(&state)
            .map(Zeroizing::new)
            .map_err(|e| PsiError::Wire(WireError::new("query state", e.to_string())))
    }

    /// A query from its stored state.
    ///
    /// # Errors
    /// Bytes that are not a labelled query's state.
    pub fn from_state(bytes: &[u8]) -> Result<Self, PsiError> {
        let state: LabelledState =
            serde_json::from_slice(bytes).map_err(|_| state_error("labelled"))?;
        let mut inputs: Vec<Vec<u8>> = state.selectors.iter().map(Selector::oprf_input).collect();
        for d in &state.dummies {
            inputs.push(unhex(d, "labelled")?.to_vec());
        }
        let clients = state
            .clients
            .iter()
            .map(|c| {
                VoprfClient::<Suite>::deserialize(&unhex(c, "labelled")?)
                    .map_err(|_| state_error("labelled"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if clients.len() != inputs.len() {
            return Err(state_error("labelled"));
        }
        Ok(LabelledQuery { epoch: state.epoch, selectors: state.selectors, inputs, clients })
    }

    /// The number of distinct selectors asked about (the rest of the query is padding).
    pub fn selectors(&self) -> usize {
        self.selectors.len()
    }

    /// Verifies the holder's proof against its published key `holder`, finalises (RFC 9497
    /// §3.3.2 Finalize), and returns the selectors whose tags are in the holder's prepared
    /// `set`, with their labels opened.
    ///
    /// # Errors
    /// [`PsiError::ProofInvalid`] when the evaluation was not made with `holder`'s key (or was
    /// altered); an evaluation or set of another epoch, mode, count or digest; a matching
    /// element whose label does not open.
    pub fn finish(
        self,
        holder: &PublicKey,
        evaluation: &EvaluationMessage,
        set: &PreparedSet,
    ) -> Result<Vec<Match>, PsiError> {
        check_evaluation(holder, self.epoch, Mode::Labelled, self.clients.len(), evaluation, set)?;
        let messages = evaluation
            .evaluations
            .iter()
            .map(|e| EvaluationElement::<Suite>::deserialize(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(PsiError::oprf)?;
        let proof = Proof::<Suite>::deserialize(&evaluation.proof).map_err(PsiError::oprf)?;
        let outputs = VoprfClient::batch_finalize(
            &self.inputs,
            &self.clients,
            &messages,
            &proof,
            holder.elem(),
        )
        .map_err(|e| proof_error(e, holder))?;
        let mut matches = Vec::new();
        for (selector, output) in self.selectors.into_iter().zip(outputs) {
            let output = output.map_err(PsiError::oprf)?;
            let (tag, key) = derive::labelled(&output, &self.epoch)?;
            if let Some(element) = set.find(&tag) {
                let sealed = element.label.as_deref().unwrap_or(&[]);
                let labels = derive::open(sealed, &key, &self.epoch, &tag)?;
                matches.push(Match { selector, labels });
            }
        }
        Ok(matches)
    }
}

/// A cardinality query in flight: one blind `r` for every element, so the holder's shuffled
/// answer can be unblinded without knowing which element it belongs to.
pub struct CardinalityQuery {
    epoch: EpochId,
    blind: Scalar,
    /// The sum of the blinded elements, as sent.
    blinded_sum: Elem,
    elements: usize,
}

impl Drop for CardinalityQuery {
    fn drop(&mut self) {
        self.blind.zeroize();
    }
}

impl fmt::Debug for CardinalityQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardinalityQuery {{ epoch: {}, elements: {} }}", self.epoch, self.elements)
    }
}

impl CardinalityQuery {
    /// Blinds `selectors` (repeats dropped) with one random scalar `r`:
    /// `B_i = r·HashToGroup(input_i)` (RFC 9497's HashToGroup, VOPRF mode), padded to exactly
    /// `padded` elements with random points.
    ///
    /// # Errors
    /// More distinct selectors than `padded`, or `padded` zero or above `limits`.
    pub fn new<R: RngCore + CryptoRng>(
        holder: &PublicKey,
        selectors: &[Selector],
        padded: usize,
        limits: &Limits,
        rng: &mut R,
    ) -> Result<(Self, QueryMessage), PsiError> {
        let selectors = distinct(selectors, padded, limits)?;
        let blind = Suite::random_scalar(rng);
        let mut points = Vec::with_capacity(padded);
        for s in &selectors {
            points.push(derive::hash_to_group(&s.oprf_input())? * blind);
        }
        while points.len() < padded {
            points.push(Suite::base_elem() * Suite::random_scalar(rng));
        }
        let blinded_sum = points.iter().fold(Suite::identity_elem(), |acc, p| acc + p);
        let elements = points.iter().map(|p| encode_element(*p)).collect();
        let epoch = holder.epoch();
        let query = QueryMessage { mode: Mode::Cardinality, epoch, elements };
        Ok((CardinalityQuery { epoch, blind, blinded_sum, elements: padded }, query))
    }

    /// The query's state, to keep (encrypted: it holds the blind) until the holder answers;
    /// [`CardinalityQuery::from_state`] reads it back.
    ///
    /// # Errors
    /// Only those of the JSON writer.
    pub fn to_state(&self) -> Result<Zeroizing<Vec<u8>>, PsiError> {
        let state = CardinalityState {
            epoch: self.epoch,
            blind: hex::encode(Suite::serialize_scalar(self.blind)),
            blinded_sum: hex::encode(Suite::serialize_elem(self.blinded_sum)),
            elements: self.elements,
        };
        serde_json::to_vec(&state)
            .map(Zeroizing::new)
            .map_err(|e| PsiError::Wire(WireError::new("query state", e.to_string())))
    }

    /// A query from its stored state.
    ///
    /// # Errors
    /// Bytes that are not a cardinality query's state.
    pub fn from_state(bytes: &[u8]) -> Result<Self, PsiError> {
        let state: CardinalityState =
            serde_json::from_slice(bytes).map_err(|_| state_error("cardinality"))?;
        let blind = Suite::deserialize_scalar(&unhex(&state.blind, "cardinality")?)
            .map_err(|_| state_error("cardinality"))?;
        let blinded_sum = Suite::deserialize_elem(&unhex(&state.blinded_sum, "cardinality")?)
            .map_err(|_| state_error("cardinality"))?;
        Ok(CardinalityQuery { epoch: state.epoch, blind, blinded_sum, elements: state.elements })
    }

    /// Verifies the holder's proof that the sum of its evaluations is the sum of the query
    /// under `holder`'s key, unblinds every evaluation with `r⁻¹`, and returns how many of
    /// them are in the holder's prepared `set`: the number of the asker's distinct selectors
    /// that the holder holds, and nothing about which.
    ///
    /// # Errors
    /// [`PsiError::ProofInvalid`] when the evaluations were not made with `holder`'s key (or
    /// were altered); an evaluation or set of another epoch, mode, count or digest.
    pub fn finish(
        self,
        holder: &PublicKey,
        evaluation: &EvaluationMessage,
        set: &PreparedSet,
    ) -> Result<usize, PsiError> {
        check_evaluation(holder, self.epoch, Mode::Cardinality, self.elements, evaluation, set)?;
        let evaluated = evaluation
            .evaluations
            .iter()
            .enumerate()
            .map(|(i, e)| decode_element(e, &format!("evaluation.evaluations[{i}]")))
            .collect::<Result<Vec<Elem>, _>>()?;
        self.verify_sum(holder, &evaluated, &evaluation.proof)?;
        let unblind = Suite::invert_scalar(self.blind);
        let mut count = 0;
        for e in evaluated {
            let tag = derive::cardinality(&encode_element(e * unblind), &self.epoch)?;
            if set.find(&tag).is_some() {
                count += 1;
            }
        }
        Ok(count)
    }

    /// RFC 9497 §2.2.2 VerifyProof on the one pair `(ΣB, ΣE)`, through the VOPRF client:
    /// a client state holding `(r, ΣB)` finalised on `ΣE` verifies the proof first.
    fn verify_sum(
        &self,
        holder: &PublicKey,
        evaluated: &[Elem],
        proof: &[u8],
    ) -> Result<(), PsiError> {
        let sum = evaluated.iter().fold(Suite::identity_elem(), |acc, p| acc + p);
        let bad = || PsiError::ProofInvalid { epoch: holder.epoch() };
        let state = [
            &Suite::serialize_scalar(self.blind)[..],
            &Suite::serialize_elem(self.blinded_sum)[..],
        ]
        .concat();
        let client = VoprfClient::<Suite>::deserialize(&state).map_err(PsiError::oprf)?;
        let message = EvaluationElement::<Suite>::deserialize(&Suite::serialize_elem(sum))
            .map_err(|_| bad())?;
        let proof = Proof::<Suite>::deserialize(proof).map_err(PsiError::oprf)?;
        let inputs: [&[u8]; 1] = [&[]];
        let clients = [client];
        let messages = [message];
        let mut outputs =
            VoprfClient::batch_finalize(&inputs, &clients, &messages, &proof, holder.elem())
                .map_err(|e| proof_error(e, holder))?;
        outputs.next().transpose().map_err(PsiError::oprf)?;
        Ok(())
    }
}
