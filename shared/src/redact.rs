//! Redaction of secrets from text the functions print (a worker's join log tail).

/// Replaces anything shaped like a bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`) with a marker.
pub fn redact_tokens(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_tok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_tok(bytes[i - 1]);
        if starts_word
            && i + 23 <= bytes.len()
            && bytes[i..i + 6].iter().all(|b| is_tok(*b))
            && bytes[i + 6] == b'.'
            && bytes[i + 7..i + 23].iter().all(|b| is_tok(*b))
        {
            out.push_str("<redacted-token>");
            i += 23;
            continue;
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_from_join_logs() {
        let text = "running kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef ok\nid=abcdef.0123456789abcdefX keep? x";
        let out = redact_tokens(text);
        assert!(!out.contains("0123456789abcdef ok"), "{out}");
        assert!(out.contains("--token <redacted-token> ok"));
        assert_eq!(redact_tokens("é plain ascii"), "é plain ascii");
    }
}
