//! `entente lexicon`: the shipped offence lexicon and the dual-criminality check, through the
//! real binary.

use crate::common::{entente, text};

#[test]
fn nl_138ab_to_us_is_satisfied() {
    let out = entente(&[
        "lexicon",
        "dual-criminality",
        "--from",
        "NL",
        "--provision",
        "Sr 138ab",
        "--to",
        "US",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("verdict:   SATISFIED"), "{stdout}");
    // Both sides, with citations and penalties.
    assert!(stdout.contains("Sr 138ab(1)") && stdout.contains("24 months"), "{stdout}");
    assert!(stdout.contains("18 U.S.C. §1030(a)(2)") && stdout.contains("12 months"), "{stdout}");
    assert!(stdout.contains("Art 24(1)(a)") && stdout.contains("Art 25(5)"), "{stdout}");
    assert!(stdout.contains("Reason: same conduct (illegal-access)"), "{stdout}");
}

#[test]
fn json_output_parses() {
    let out = entente(&[
        "lexicon",
        "dual-criminality",
        "--from",
        "nl",
        "--provision",
        "Sr 138ab",
        "--to",
        "us",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("not JSON ({e}): {}", text(&out.stdout)),
    };
    assert_eq!(v["verdict"], "satisfied");
    assert_eq!(v["threshold"]["months"], 12);
    assert_eq!(v["from"]["provision"]["citation"], "Sr 138ab(1)");
    assert_eq!(v["from"]["provision"]["penalty"]["max_months"], 24);
    assert_eq!(v["from"]["provision"]["status"], "V1");

    for args in
        [["lexicon", "show", "UK", "--json"], ["lexicon", "concept", "illegal-access", "--json"]]
    {
        let out = entente(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(e) => panic!("{args:?}: not JSON ({e})"),
        };
        assert!(v.is_object(), "{args:?}");
    }
}

#[test]
fn unverified_penalty_is_reported_as_undetermined() {
    let out = entente(&[
        "lexicon",
        "dual-criminality",
        "--from",
        "NL",
        "--provision",
        "Sr 138b",
        "--to",
        "DE",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("UNDETERMINED"), "{stdout}");
    assert!(stdout.contains("[U] unverified"), "{stdout}");
    assert!(stdout.contains("the maximum penalty of Sr 138b(1) is unverified (U)"), "{stdout}");
    assert!(stdout.contains("has several limbs"), "{stdout}");
}

#[test]
fn unknown_provision_and_jurisdiction_exit_2_with_suggestions() {
    let out = entente(&[
        "lexicon",
        "dual-criminality",
        "--from",
        "NL",
        "--provision",
        "Sr 138ac",
        "--to",
        "US",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown provision `Sr 138ac` in NL"), "{stderr}");
    assert!(stderr.contains("did you mean Sr 138ab"), "{stderr}");
    assert!(out.stdout.is_empty());

    let out = entente(&["lexicon", "show", "Netherland"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown jurisdiction `Netherland`"), "{stderr}");
    assert!(stderr.contains("NL (Netherlands)"), "{stderr}");

    let out = entente(&["lexicon", "concept", "ilegal-access"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("did you mean illegal-access"));
}

#[test]
fn tables_mark_unverified_rows() {
    let out = entente(&["lexicon", "show", "NL"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let row = stdout.lines().find(|l| l.trim_start().starts_with("Sr 225 ")).unwrap_or_default();
    assert!(row.contains("[U] unverified"), "{stdout}");
    let row =
        stdout.lines().find(|l| l.trim_start().starts_with("Sr 138ab(1) ")).unwrap_or_default();
    assert!(row.contains("24 months") && !row.contains("[U]"), "{stdout}");

    let out = entente(&["lexicon", "concept", "illegal-access"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("ETS 185 Art 2: Illegal access"), "{stdout}");
    assert!(stdout.contains("Computer Misuse Act 1990 s1"), "{stdout}");
}
