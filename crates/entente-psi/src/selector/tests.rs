use super::*;

const PLAIN: EmailRules = EmailRules { strip_plus: false };

fn line(s: &str) -> String {
    parse_line(s, PLAIN).unwrap().to_string()
}

fn err(s: &str) -> SelectorError {
    parse_line(s, PLAIN).unwrap_err()
}

#[test]
fn ip_addresses_are_canonical() {
    assert_eq!(line("ip:192.0.2.1"), "ip:192.0.2.1");
    assert_eq!(line(" 192.0.2.1 "), "ip:192.0.2.1");
    assert_eq!(line("2001:0DB8:0000:0000:0000:0000:0000:0001"), "ip:2001:db8::1");
    assert_eq!(line("ip:[2001:db8::1]"), "ip:2001:db8::1");
    assert_eq!(line("::ffff:192.0.2.1"), "ip:192.0.2.1");
    assert_eq!(line("IP:::1"), "ip:::1");
    let e = err("ip:192.0.2.256");
    assert_eq!(e.column, 4);
    assert!(e.message.contains("expected an IPv4 or IPv6 address"), "{}", e.message);
}

#[test]
fn domains_are_idna_lower_case_without_trailing_dot() {
    assert_eq!(line("Example.ORG."), "domain:example.org");
    assert_eq!(line("domain:bücher.example"), "domain:xn--bcher-kva.example");
    assert_eq!(line("domain:XN--BCHER-KVA.example"), "domain:xn--bcher-kva.example");
    assert_eq!(line("domain:_dmarc.example.org"), "domain:_dmarc.example.org");
    assert_eq!(line("domain:localhost"), "domain:localhost");
    assert!(err("domain:a..b").message.contains("label ``"));
    assert!(err("domain:192.0.2.1").message.contains("IP address"));
    // Found by fuzzing (psi_selector): an address with a trailing dot was taken as a domain
    // whose canonical text, `20.20.1.1`, no longer parsed as one.
    assert!(err("20.20.1.1.").message.contains("IP address"));
    assert!(err("domain:192.0.2.1.").message.contains("IP address"));
    let e = err("domain:exa mple.org");
    assert_eq!(e.column, 11, "{e}");
    assert!(err("domain:.").message.contains("expected a domain"));
    assert!(err(&format!("domain:{}.org", "a".repeat(64))).message.contains("label"));
}

#[test]
fn emails_keep_the_local_part_and_normalise_the_domain() {
    assert_eq!(line("Alice.Smith@Example.ORG"), "email:Alice.Smith@example.org");
    assert_eq!(line("email:alice+shop@bücher.example."), "email:alice+shop@xn--bcher-kva.example");
    let strip = EmailRules { strip_plus: true };
    assert_eq!(
        parse_line("alice+shop@example.org", strip).unwrap().canonical(),
        "alice@example.org"
    );
    // Without a kind, a leading `+` reads as a phone number.
    assert!(parse_line("+x@example.org", strip).unwrap_err().message.contains("phone"));
    assert_eq!(parse_line("email:+x@example.org", strip).unwrap().canonical(), "+x@example.org");
    assert!(err("email:alice").message.contains("no @"));
    assert!(err("email:@example.org").message.contains("local part"));
    let e = err("email:alice@exa mple.org");
    assert_eq!(e.column, 16, "{e}");
}

#[test]
fn urls_are_normalised() {
    assert_eq!(line("HTTPS://Example.ORG:443/a/b?q=1#frag"), "url:https://example.org/a/b?q=1");
    assert_eq!(line("url:http://example.org:80"), "url:http://example.org/");
    assert_eq!(line("http://example.org.:8080/x"), "url:http://example.org:8080/x");
    assert_eq!(line("https://bücher.example/"), "url:https://xn--bcher-kva.example/");
    assert!(err("url:example.org/x").message.contains("expected an absolute URL"));
    assert!(err("url:mailto:alice@example.org").message.contains("no host"));
    // Found by fuzzing (psi_selector): `updat..` lost one dot, and its canonical text
    // `https://updat./gate` then read back as `https://updat/gate`, another selector.
    for bad in ["url:https://updat../gate?x=1", "url:http://a..b/", "url:http://.a/"] {
        assert!(err(bad).message.contains("empty label"), "{bad}");
    }
}

#[test]
fn phone_numbers_are_e164() {
    assert_eq!(line("+31 20 123 4567"), "phone:+31201234567");
    assert_eq!(line("phone:0031 (0)20-123.4567"), "phone:+31201234567");
    assert_eq!(line("phone:+1 (555) 010-0123"), "phone:+15550100123");
    let e = err("phone:020 123 4567");
    assert!(e.message.contains("no country code"), "{e}");
    assert!(e.message.contains("not guessed"), "{e}");
    let e = err("phone:+31 20 12x 4567");
    assert_eq!(e.column, 16, "{e}");
    assert!(err("phone:+0 123 4567").message.contains("cannot start with 0"));
    assert!(err("phone:+31 2").message.contains("7 to 15"));
    assert!(err("phone:+31 2012345678901234").message.contains("7 to 15"));
}

#[test]
fn bitcoin_addresses_verify_their_checksum() {
    // Base58check P2PKH and P2SH.
    assert_eq!(
        line("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
        "btc:1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    );
    assert_eq!(
        line("btc:3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"),
        "btc:3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"
    );
    let e = err("btc:1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb");
    assert!(e.message.contains("checksum"), "{e}");
    assert!(err("btc:1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0a").message.contains("base58"));
    // BIP-173 and BIP-350 valid addresses (from the BIPs' test vectors), lower-cased.
    for (given, canonical) in [
        (
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        ),
        (
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        ),
        (
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        ),
    ] {
        assert_eq!(parse(SelectorKind::Bitcoin, given, PLAIN).unwrap().canonical(), canonical);
        assert_eq!(line(given), format!("btc:{canonical}"));
    }
    // BIP-350 invalid addresses: bech32 checksum on v1, bech32m on v0, mixed case, bad
    // program lengths, bad witness version.
    for bad in [
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
        "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",
        "bc1pw5dgrnzv",
        "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
        "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",
        "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",
    ] {
        let e = parse(SelectorKind::Bitcoin, bad, PLAIN).unwrap_err();
        assert!(e.message.contains("expected a Bitcoin address"), "{bad}: {e}");
    }
}

#[test]
fn ethereum_addresses_verify_eip55() {
    // The EIP-55 examples.
    for a in [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ] {
        assert_eq!(line(a), format!("eth:{}", a.to_ascii_lowercase()));
    }
    assert_eq!(
        line("eth:0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED"),
        "eth:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
    );
    let e = err("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD");
    assert!(e.message.contains("EIP-55"), "{e}");
    assert_eq!(e.column, 42);
    assert!(err("eth:5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").message.contains("no 0x"));
    assert!(err("eth:0x5aAeb6").message.contains("6 hex digits"));
    assert_eq!(err("eth:0x5aAeg6053F3E94C9b9A09f33669435E7Ef1BeAed").column, 11);
}

#[test]
fn file_hashes_are_tagged_by_length() {
    let md5 = "D41D8CD98F00B204E9800998ECF8427E";
    assert_eq!(line(md5), format!("md5:{}", md5.to_ascii_lowercase()));
    assert_eq!(line(&format!("hash:{}", "a".repeat(40))), format!("sha1:{}", "a".repeat(40)));
    assert_eq!(line(&format!("sha256:{}", "B".repeat(64))), format!("sha256:{}", "b".repeat(64)));
    assert!(err(&format!("sha256:{md5}")).message.contains("expected a SHA-256 hash"));
    assert!(err("hash:abc").message.contains("found 3 hex digits"));
    assert_eq!(err("md5:d41d8cd98f00b204e9800998ecf8427z").column, 36);
}

#[test]
fn accounts_lower_case_their_provider() {
    assert_eq!(line("account:Telegram:AliceX"), "account:telegram:AliceX");
    assert_eq!(line("account: Discord : user#1234 "), "account:discord:user#1234");
    assert!(err("account:alice").message.contains("no provider"));
    assert!(err("account:tele gram:x").message.contains("provider"));
    assert!(err("account:telegram:").message.contains("no id"));
}

#[test]
fn kinds_must_be_named_when_they_cannot_be_told() {
    let e = err("alice");
    assert!(e.message.contains("cannot tell the kind of `alice`"), "{e}");
    assert!(e.message.contains("kind:value"), "{e}");
    assert_eq!(err("   ").message, "found an empty line; expected a selector");
    assert!(err("ip:").message.contains("found nothing"));
}

#[test]
fn the_oprf_input_separates_kinds() {
    let ip = parse_line("ip:192.0.2.1", PLAIN).unwrap();
    assert_eq!(ip.oprf_input(), b"ip\x00192.0.2.1");
    let acct = parse_line("account:x:192.0.2.1", PLAIN).unwrap();
    assert_ne!(ip.oprf_input(), acct.oprf_input());
}

#[test]
fn canonical_forms_parse_back_to_themselves() {
    for s in [
        "ip:2001:db8::1",
        "email:a+b@xn--bcher-kva.example",
        "domain:example.org",
        "url:https://example.org/a?b",
        "phone:+31201234567",
        "btc:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "eth:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        "account:telegram:AliceX",
    ] {
        assert_eq!(line(s), s);
        let sel = parse_line(s, PLAIN).unwrap();
        let json = serde_json::to_string(&sel).unwrap();
        assert_eq!(serde_json::from_str::<Selector>(&json).unwrap(), sel);
        assert_eq!(parse(sel.kind(), sel.canonical(), PLAIN).unwrap(), sel);
    }
}

#[test]
fn a_file_reports_each_bad_line_at_its_position() {
    let text = concat!(
        "# indicators of LANTERN\n",
        "ip:192.0.2.10   # C2\n",
        "\n",
        "  domain:exa mple.org\n",
        "https://c2.example/#x\n",
        "phone:020 123\r\n",
        "account:discord:user#1234\n",
    );
    let e = parse_file("lantern.txt", text, PLAIN).unwrap_err();
    let lines: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("lantern.txt:4:13: selector: found `exa mple.org`"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("lantern.txt:6:7: selector: found `020 123`"), "{}", lines[1]);
    assert!(e.to_string().starts_with("invalid selector file (2 problems)"));
    let ok = parse_file(
        "f",
        "ip:192.0.2.10 # C2\nhttps://c2.example/#x\naccount:discord:user#1234\n",
        PLAIN,
    )
    .unwrap();
    let got: Vec<String> = ok.iter().map(ToString::to_string).collect();
    assert_eq!(got, ["ip:192.0.2.10", "url:https://c2.example/", "account:discord:user#1234"]);
}
