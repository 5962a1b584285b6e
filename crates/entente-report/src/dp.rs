//! Differential privacy with exact integer arithmetic: the discrete Laplace distribution
//! sampled as Canonne, Kamath and Steinke give it ("The Discrete Gaussian for Differential
//! Privacy", NeurIPS 2020, Algorithms 1 and 2). Every step draws uniform integers and compares
//! them; no floating-point number is involved, so the output has exactly the distribution
//! `P(x) = (1 − q)/(1 + q) · q^|x|`, `q = exp(−1/scale)` (the floating-point Laplace mechanism
//! leaks through the gaps of its doubles: Mironov, CCS 2012).
//!
//! The random numbers come from the caller's cryptographically secure generator: the node
//! passes the operating system's (`OsRng`); tests pass a seeded one.

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A positive rational number `num/den` in lowest terms (a privacy parameter or a scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: u64,
    den: u64,
}

/// Largest numerator or denominator accepted (keeps every product within `u128`).
const MAX_TERM: u64 = 1_000_000_000_000;

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Ratio {
    /// One.
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };
    /// One half.
    pub const HALF: Ratio = Ratio { num: 1, den: 2 };

    /// `num/den` in lowest terms; `None` unless `0 < num`, `0 < den` and both are at most 10¹².
    pub fn new(num: u64, den: u64) -> Option<Ratio> {
        Ratio::reduce(u128::from(num), u128::from(den))
    }

    fn reduce(num: u128, den: u128) -> Option<Ratio> {
        if num == 0 || den == 0 {
            return None;
        }
        let g = gcd(num, den);
        let (num, den) = (u64::try_from(num / g).ok()?, u64::try_from(den / g).ok()?);
        (num <= MAX_TERM && den <= MAX_TERM).then_some(Ratio { num, den })
    }

    /// An integer as a ratio.
    pub fn integer(n: u64) -> Option<Ratio> {
        Ratio::new(n, 1)
    }

    /// The numerator.
    pub fn num(self) -> u64 {
        self.num
    }

    /// The denominator.
    pub fn den(self) -> u64 {
        self.den
    }

    /// `self + other`, exactly (`None` past the limits).
    pub fn checked_add(self, other: Ratio) -> Option<Ratio> {
        let (a, b, c, d) = self.terms(other);
        Ratio::reduce(a * d + c * b, b * d)
    }

    /// `self − other`, exactly; `None` when the result is not positive.
    pub fn checked_sub(self, other: Ratio) -> Option<Ratio> {
        let (a, b, c, d) = self.terms(other);
        Ratio::reduce((a * d).checked_sub(c * b)?, b * d)
    }

    /// `self × n`.
    pub fn checked_mul_int(self, n: u64) -> Option<Ratio> {
        Ratio::reduce(u128::from(self.num) * u128::from(n), u128::from(self.den))
    }

    /// `n / self`.
    pub fn int_div(n: u64, by: Ratio) -> Option<Ratio> {
        Ratio::reduce(u128::from(n) * u128::from(by.den), u128::from(by.num))
    }

    /// Whether `self ≤ other`.
    pub fn le(self, other: Ratio) -> bool {
        let (a, b, c, d) = self.terms(other);
        a * d <= c * b
    }

    fn terms(self, other: Ratio) -> (u128, u128, u128, u128) {
        (u128::from(self.num), u128::from(self.den), u128::from(other.num), u128::from(other.den))
    }

    /// An approximation, for display only (never for noise).
    pub fn approx(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Parses `3`, `1/2` or `0.25` (at most 9 decimals); what is wrong is said in words.
    ///
    /// # Errors
    /// Text that is not a positive number in one of these forms.
    pub fn parse(text: &str) -> Result<Ratio, String> {
        let t = text.trim();
        let bad = || {
            format!("`{text}`: expected a positive number such as 1, 1/2 or 0.25 (at most 10^12)")
        };
        let digits = |s: &str| -> Result<u64, String> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse::<u64>().map_err(|_| bad())
        };
        if let Some((n, d)) = t.split_once('/') {
            return Ratio::new(digits(n)?, digits(d)?).ok_or_else(bad);
        }
        if let Some((i, f)) = t.split_once('.') {
            if f.is_empty() || f.len() > 9 {
                return Err(bad());
            }
            let scale = 10u64.pow(u32::try_from(f.len()).map_err(|_| bad())?);
            let whole = if i.is_empty() { 0 } else { digits(i)? };
            let num = whole.checked_mul(scale).and_then(|w| w.checked_add(digits(f).ok()?));
            return num.and_then(|n| Ratio::new(n, scale)).ok_or_else(bad);
        }
        Ratio::integer(digits(t)?).ok_or_else(bad)
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl Serialize for Ratio {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ratio::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A uniform integer in `0..n` (`n > 0`), by rejection: no modulo bias.
fn uniform_below<R: RngCore + CryptoRng>(rng: &mut R, n: u128) -> u128 {
    let draw = |rng: &mut R| (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    let zone = u128::MAX - (u128::MAX % n);
    loop {
        let x = draw(rng);
        if x < zone {
            return x % n;
        }
    }
}

/// `true` with probability `num/den` (`num ≤ den`, `den > 0`).
fn bernoulli<R: RngCore + CryptoRng>(rng: &mut R, num: u128, den: u128) -> bool {
    uniform_below(rng, den) < num
}

/// `true` with probability `exp(−num/den)` for `0 ≤ num/den ≤ 1` (CKS Algorithm 1, first
/// part: the parity of the first `K` with `Bernoulli(γ/K) = 0`).
fn bernoulli_exp_unit<R: RngCore + CryptoRng>(rng: &mut R, num: u128, den: u128) -> bool {
    let mut k: u128 = 1;
    while bernoulli(rng, num, den * k) {
        k += 1;
    }
    k % 2 == 1
}

/// `true` with probability `exp(−num/den)` for any `num/den ≥ 0` (CKS Algorithm 1).
fn bernoulli_exp<R: RngCore + CryptoRng>(rng: &mut R, num: u128, den: u128) -> bool {
    for _ in 0..num / den {
        if !bernoulli_exp_unit(rng, 1, 1) {
            return false;
        }
    }
    bernoulli_exp_unit(rng, num % den, den)
}

/// One draw from the discrete Laplace distribution of `scale` (`P(x) ∝ exp(−|x|/scale)`),
/// CKS Algorithm 2 with `scale = num/den`: a geometric variable of parameter `exp(−1/num)`
/// built from a uniform remainder and a unit-rate geometric quotient, divided by `den`, with
/// a random sign (zero drawn once, not twice).
pub fn discrete_laplace<R: RngCore + CryptoRng>(rng: &mut R, scale: Ratio) -> i64 {
    let (s, t) = (u128::from(scale.num), u128::from(scale.den));
    loop {
        let u = uniform_below(rng, s);
        if !bernoulli_exp(rng, u, s) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp_unit(rng, 1, 1) {
            v += 1;
        }
        let y = (u + s * v) / t;
        let negative = bernoulli(rng, 1, 2);
        if negative && y == 0 {
            continue;
        }
        // `y` exceeds i64 only with probability below exp(−2^63/scale): never.
        let y = i64::try_from(y).unwrap_or(i64::MAX);
        return if negative { -y } else { y };
    }
}

/// The smallest `w` with `P(|X| > w) ≤ 1 − confidence` for discrete Laplace noise of `scale`
/// (`P(|X| > w) = 2q^(w+1)/(1 + q)`), for stating the noise beside each figure. Display only.
pub fn half_width(scale: Ratio, confidence: f64) -> u64 {
    let q = (-1.0 / scale.approx()).exp();
    let tail = 1.0 - confidence;
    if q >= 1.0 || !(0.0..1.0).contains(&tail) || tail == 0.0 {
        // A scale too large for a double to tell the noise from none: unbounded in practice.
        return u64::MAX;
    }
    let outside = |w: f64| 2.0 * q.powf(w + 1.0) / (1.0 + q) > tail;
    // Closed form (w + 1 ≥ ln(2 / ((1 + q)·tail)) / −ln q), then the integer on either side.
    let estimate = ((2.0 / ((1.0 + q) * tail)).ln() / -q.ln() - 1.0).ceil().max(0.0);
    let mut w = estimate;
    while w > 0.0 && !outside(w - 1.0) {
        w -= 1.0;
    }
    while outside(w) {
        w += 1.0;
    }
    w as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn pmf(scale: f64, x: i64) -> f64 {
        let q = (-1.0 / scale).exp();
        (1.0 - q) / (1.0 + q) * q.powi(i32::try_from(x.abs()).unwrap())
    }

    /// Pearson's chi-square of `n` draws against the exact PMF: a bin per value below `w`
    /// in magnitude and the two tails `|x| ≥ w` pooled, `w` chosen so that every bin expects
    /// at least 20 draws.
    fn chi_square(scale: Ratio, n: usize, seed: u64) -> (f64, usize) {
        let mut rng = StdRng::seed_from_u64(seed);
        let s = scale.approx();
        let mut w = 1i64;
        while pmf(s, w + 1) * n as f64 >= 20.0 {
            w += 1;
        }
        // Bins: 0 is x ≤ −w, 1..=2w−1 are −(w−1)..=w−1, 2w is x ≥ w.
        let mut counts = vec![0u64; usize::try_from(2 * w + 1).unwrap()];
        for _ in 0..n {
            let x = discrete_laplace(&mut rng, scale);
            let bin = if x <= -w {
                0
            } else if x >= w {
                2 * w
            } else {
                x + w
            };
            counts[usize::try_from(bin).unwrap()] += 1;
        }
        let tail: f64 = (w..400).map(|k| pmf(s, k)).sum();
        let mut stat = 0.0;
        for (i, &c) in counts.iter().enumerate() {
            let x = i as i64 - w;
            let p = if i == 0 || i == counts.len() - 1 { tail } else { pmf(s, x) };
            let e = p * n as f64;
            stat += (c as f64 - e).powi(2) / e;
        }
        (stat, counts.len() - 1)
    }

    /// The 0.999 quantile of chi-square with `df` degrees of freedom (Wilson–Hilferty).
    fn critical(df: usize) -> f64 {
        let k = df as f64;
        let z = 3.090_232;
        k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
    }

    #[test]
    fn discrete_laplace_matches_its_pmf() {
        for (scale, seed) in [
            (Ratio::new(1, 1).unwrap(), 1),
            (Ratio::new(5, 2).unwrap(), 2),
            (Ratio::new(24, 1).unwrap(), 3),
            (Ratio::new(1, 3).unwrap(), 4),
        ] {
            let (stat, df) = chi_square(scale, 200_000, seed);
            assert!(stat < critical(df), "scale {scale}: chi-square {stat:.1} with {df} df");
        }
    }

    #[test]
    fn the_test_rejects_a_wrong_scale() {
        // The same test on draws of scale 3 against the PMF of scale 5/2 must fail: the test
        // has the power to see a wrong distribution.
        let mut rng = StdRng::seed_from_u64(9);
        let n = 200_000;
        let wrong = 2.5;
        let mut hist = std::collections::BTreeMap::<i64, u64>::new();
        for _ in 0..n {
            *hist
                .entry(discrete_laplace(&mut rng, Ratio::new(3, 1).unwrap()).clamp(-8, 8))
                .or_default() += 1;
        }
        let mut stat = 0.0;
        for x in -7..=7 {
            let e = pmf(wrong, x) * n as f64;
            stat += (hist.get(&x).copied().unwrap_or(0) as f64 - e).powi(2) / e;
        }
        assert!(stat > critical(14) * 10.0, "chi-square {stat:.1}");
    }

    #[test]
    fn bernoulli_exp_has_its_probability() {
        let mut rng = StdRng::seed_from_u64(5);
        for (num, den) in [(1u128, 2u128), (3, 2), (7, 3)] {
            let n = 100_000;
            let hits = (0..n).filter(|_| bernoulli_exp(&mut rng, num, den)).count() as f64;
            let p = (-(num as f64) / den as f64).exp();
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!((hits / n as f64 - p).abs() < 5.0 * sd, "exp(-{num}/{den})");
        }
    }

    #[test]
    fn ratios_parse_and_compare_exactly() {
        assert_eq!(Ratio::parse("1/2").unwrap(), Ratio::new(1, 2).unwrap());
        assert_eq!(Ratio::parse("0.25").unwrap(), Ratio::new(1, 4).unwrap());
        assert_eq!(Ratio::parse("2").unwrap().to_string(), "2");
        assert_eq!(Ratio::parse(".5").unwrap(), Ratio::new(1, 2).unwrap());
        for bad in ["0", "-1", "1/0", "abc", "", "1.", "0.0000000001", "1e3", "99999999999999"] {
            assert!(Ratio::parse(bad).is_err(), "{bad}");
        }
        let half = Ratio::new(1, 2).unwrap();
        let third = Ratio::new(1, 3).unwrap();
        assert_eq!(half.checked_add(third).unwrap(), Ratio::new(5, 6).unwrap());
        assert_eq!(half.checked_sub(third).unwrap(), Ratio::new(1, 6).unwrap());
        assert!(half.checked_sub(half).is_none());
        assert!(third.le(half) && !half.le(third) && half.le(half));
        assert_eq!(Ratio::int_div(24, half).unwrap(), Ratio::integer(48).unwrap());
    }

    #[test]
    fn half_width_covers_the_confidence() {
        let scale = Ratio::new(24, 1).unwrap();
        let w = half_width(scale, 0.95);
        let inside: f64 = (-(w as i64)..=w as i64).map(|x| pmf(24.0, x)).sum();
        let narrower: f64 = (-(w as i64 - 1)..=w as i64 - 1).map(|x| pmf(24.0, x)).sum();
        assert!(inside >= 0.95 && narrower < 0.95, "{w}: {inside} {narrower}");
    }
}
