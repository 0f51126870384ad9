//! Client side of HTTP Digest authentication as SIP uses it (RFC 3261
//! §22.2 and §22.4, RFC 2617 §3.2.2, RFC 7616 §3.4): answering a trunk's
//! `WWW-Authenticate` (401) or `Proxy-Authenticate` (407) challenge with
//! `Authorization` or `Proxy-Authorization`.
//!
//! Algorithms: MD5, MD5-sess, SHA-256 and SHA-256-sess (RFC 7616 §3.4.2);
//! qop `auth`, `auth-int` (the body hashed, RFC 2617 §3.2.2.3) or none (the
//! RFC 2069 form RFC 2617 §3.2.2.1 keeps). Of several challenges the first
//! one we can answer is taken (RFC 7616 §3.7: the server lists them in its
//! order of preference). vendor/rsipstack has a digest helper
//! (`DigestGenerator`), but it writes `algorithm=SHA256` instead of
//! `SHA-256`, computes `-sess` and `auth-int` wrong, quotes `qop` and writes
//! `nc` in decimal, so Mediator has its own.

use md5::Digest as _;

/// Why a challenge cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// The header is not a `Digest` challenge.
    #[error("not a Digest challenge")]
    NotDigest,
    /// A parameter the challenge must have (realm, nonce) is missing.
    #[error("challenge has no {0}")]
    Missing(&'static str),
    /// The algorithm is not one we implement.
    #[error("unsupported algorithm {0}")]
    Algorithm(String),
    /// The qop options offer nothing we implement.
    #[error("unsupported qop {0}")]
    Qop(String),
    /// The header value could not be parsed.
    #[error("malformed challenge: {0}")]
    Malformed(String),
}

/// A Digest algorithm (RFC 7616 §3.4.2, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5` (the default when the challenge names none, RFC 2617 §3.2.1).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616).
    Sha256,
    /// `SHA-256-sess` (RFC 7616).
    Sha256Sess,
}

impl Algorithm {
    fn parse(s: &str) -> Result<Self, DigestError> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Ok(Self::Md5),
            "MD5-SESS" => Ok(Self::Md5Sess),
            "SHA-256" => Ok(Self::Sha256),
            "SHA-256-SESS" => Ok(Self::Sha256Sess),
            _ => Err(DigestError::Algorithm(s.to_string())),
        }
    }

    /// The token as RFC 7616 §6.1 registers it.
    pub fn token(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    fn sess(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    /// Lower-case hex of the hash of `data`.
    fn hex(self, data: &[u8]) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hex(&md5::Md5::digest(data)),
            Self::Sha256 | Self::Sha256Sess => hex(&sha2::Sha256::digest(data)),
        }
    }
}

/// The quality of protection we answer with (RFC 2617 §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// The challenge offered no qop: RFC 2069 compatible response.
    None,
    /// `auth`.
    Auth,
    /// `auth-int`: the body is part of the hash.
    AuthInt,
}

/// One parsed `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back unchanged.
    pub opaque: Option<String>,
    /// `algorithm` (MD5 when absent).
    pub algorithm: Algorithm,
    /// The qop we will answer with: `auth` when offered, else `auth-int`,
    /// else none.
    pub qop: Qop,
    /// `stale=true`: the previous credentials were good, the nonce was not
    /// (RFC 2617 §3.2.1).
    pub stale: bool,
}

/// A challenge's scheme and its parameters (name lower-cased, value).
type RawChallenge = (String, Vec<(String, String)>);

/// What a digest response is computed over (RFC 2617 §3.2.2).
#[derive(Clone, Copy)]
pub struct DigestInput<'a> {
    /// Digest username.
    pub username: &'a str,
    /// Password (never logged).
    pub password: &'a str,
    /// The request's method (`INVITE`).
    pub method: &'a str,
    /// The digest-uri: the Request-URI as sent.
    pub uri: &'a str,
    /// The request body (hashed for `auth-int` only).
    pub body: &'a [u8],
}

/// Splits a header value into challenges, each `(scheme, params)`. Params
/// keep their order; quoted strings are unquoted (backslash escapes
/// removed, RFC 3261 §25.1 quoted-pair).
fn split_challenges(value: &str) -> Result<Vec<RawChallenge>, DigestError> {
    let mut out: Vec<RawChallenge> = Vec::new();
    let s = value.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] as char).is_ascii_whitespace() {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> String {
        let start = *i;
        while *i < s.len() && !matches!(s[*i], b'=' | b',' | b'"') && !s[*i].is_ascii_whitespace() {
            *i += 1;
        }
        value[start..*i].to_string()
    };
    loop {
        skip_ws(&mut i);
        while i < s.len() && s[i] == b',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= s.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            return Err(DigestError::Malformed(value.to_string()));
        }
        skip_ws(&mut i);
        if i < s.len() && s[i] == b'=' {
            // A parameter of the current challenge.
            i += 1;
            skip_ws(&mut i);
            let v = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = String::new();
                let mut closed = false;
                let mut chars = value[i..].char_indices();
                while let Some((k, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                v.push(n);
                            }
                        }
                        '"' => {
                            i += k + 1;
                            closed = true;
                            break;
                        }
                        c => v.push(c),
                    }
                }
                if !closed {
                    return Err(DigestError::Malformed("unterminated quoted string".into()));
                }
                v
            } else {
                token(&mut i)
            };
            match out.last_mut() {
                Some((_, params)) => params.push((word.to_ascii_lowercase(), v)),
                None => return Err(DigestError::Malformed(value.to_string())),
            }
        } else {
            // A scheme starts a new challenge.
            out.push((word, Vec::new()));
        }
    }
    Ok(out)
}

impl Challenge {
    fn from_params(scheme: &str, params: &[(String, String)]) -> Result<Self, DigestError> {
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm") {
            Some(a) => Algorithm::parse(&a)?,
            None => Algorithm::Md5,
        };
        let qop = match get("qop") {
            None => Qop::None,
            Some(list) => {
                let offered: Vec<String> = list
                    .split(',')
                    .map(|q| q.trim().to_ascii_lowercase())
                    .collect();
                if offered.iter().any(|q| q == "auth") {
                    Qop::Auth
                } else if offered.iter().any(|q| q == "auth-int") {
                    Qop::AuthInt
                } else {
                    return Err(DigestError::Qop(list));
                }
            }
        };
        if algorithm.sess() && qop == Qop::None {
            // The -sess HA1 needs a cnonce, which only a qop carries.
            return Err(DigestError::Qop("none, with a -sess algorithm".into()));
        }
        Ok(Challenge {
            realm: get("realm").ok_or(DigestError::Missing("realm"))?,
            nonce: get("nonce").ok_or(DigestError::Missing("nonce"))?,
            opaque: get("opaque"),
            algorithm,
            qop,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The first challenge in `values` (the values of every
    /// `WWW-Authenticate` or every `Proxy-Authenticate` header, in order)
    /// that we can answer; else the reason the first one cannot be.
    pub fn pick<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, DigestError> {
        let mut first_err = None;
        for v in values {
            let parsed = match split_challenges(v) {
                Ok(p) => p,
                Err(e) => {
                    first_err.get_or_insert(e);
                    continue;
                }
            };
            for (scheme, params) in parsed {
                match Self::from_params(&scheme, &params) {
                    Ok(c) => return Ok(c),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        Err(first_err.unwrap_or(DigestError::NotDigest))
    }

    /// The `response` value (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1):
    /// `H(HA1:nonce:nc:cnonce:qop:HA2)`, or `H(HA1:nonce:HA2)` without qop.
    /// `nc` is the nonce count (1 for a new nonce).
    pub fn response(&self, input: &DigestInput<'_>, cnonce: &str, nc: u32) -> String {
        let DigestInput {
            username,
            password,
            method,
            uri,
            body,
        } = *input;
        let alg = self.algorithm;
        let mut ha1 = alg.hex(format!("{username}:{}:{password}", self.realm).as_bytes());
        if alg.sess() {
            ha1 = alg.hex(format!("{ha1}:{}:{cnonce}", self.nonce).as_bytes());
        }
        let ha2 = match self.qop {
            Qop::AuthInt => alg.hex(format!("{method}:{uri}:{}", alg.hex(body)).as_bytes()),
            _ => alg.hex(format!("{method}:{uri}").as_bytes()),
        };
        match self.qop {
            Qop::None => alg.hex(format!("{ha1}:{}:{ha2}", self.nonce).as_bytes()),
            Qop::Auth | Qop::AuthInt => {
                let q = if self.qop == Qop::Auth {
                    "auth"
                } else {
                    "auth-int"
                };
                alg.hex(format!("{ha1}:{}:{nc:08x}:{cnonce}:{q}:{ha2}", self.nonce).as_bytes())
            }
        }
    }

    /// The credentials header value (`Digest username=..., ...`) answering
    /// this challenge for `input` (RFC 3261 §22.4, RFC 7616 §3.4). A fresh
    /// random cnonce is used, with nonce count 1.
    pub fn authorization(&self, input: &DigestInput<'_>) -> String {
        let cnonce = hex(&rand::random::<[u8; 12]>());
        self.authorization_with(input, &cnonce, 1)
    }

    /// As [`Challenge::authorization`], with a given cnonce and nonce count.
    pub fn authorization_with(&self, input: &DigestInput<'_>, cnonce: &str, nc: u32) -> String {
        let response = self.response(input, cnonce, nc);
        let (username, uri) = (input.username, input.uri);
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
            quote(username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(uri),
            response,
            self.algorithm.token()
        );
        match self.qop {
            Qop::None => {}
            Qop::Auth => v.push_str(&format!(", qop=auth, nc={nc:08x}, cnonce=\"{cnonce}\"")),
            Qop::AuthInt => {
                v.push_str(&format!(", qop=auth-int, nc={nc:08x}, cnonce=\"{cnonce}\""))
            }
        }
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{}\"", quote(o)));
        }
        v
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Escapes `"` and `\` for a quoted-string (RFC 3261 §25.1).
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5: MD5, qop=auth.
    #[test]
    fn rfc2617_example() {
        let c = Challenge::pick([
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        ])
        .expect("challenge");
        assert_eq!(c.qop, Qop::Auth);
        assert_eq!(c.algorithm, Algorithm::Md5);
        let input = DigestInput {
            username: "Mufasa",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        };
        let r = c.response(&input, "0a4f113b", 1);
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
        let h = c.authorization_with(&input, "0a4f113b", 1);
        assert!(
            h.contains("qop=auth, nc=00000001, cnonce=\"0a4f113b\""),
            "{h}"
        );
        assert!(
            h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""),
            "{h}"
        );
        assert!(
            h.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{h}"
        );
    }

    /// RFC 7616 §3.9.1: the same request with SHA-256 and MD5 challenges;
    /// the first one listed is answered.
    #[test]
    fn rfc7616_examples() {
        let sha = "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
                   nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                   opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let md5 = "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=MD5, \
                   nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                   opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let input = DigestInput {
            username: "Mufasa",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        };
        let answer = |c: &Challenge| c.response(&input, cnonce, 1);
        let c = Challenge::pick([sha, md5]).expect("challenge");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(
            answer(&c),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let c = Challenge::pick([md5]).expect("challenge");
        assert_eq!(answer(&c), "8ca523f5e9506fed4657c9700eebdbec");
        // Both in one header value, comma separated (RFC 7235 §4.1).
        let both = format!("{md5}, {sha}");
        let c = Challenge::pick([both.as_str()]).expect("challenge");
        assert_eq!(c.algorithm, Algorithm::Md5);
        let h = c.authorization_with(&input, cnonce, 1);
        assert!(h.contains("algorithm=MD5"), "{h}");
    }

    /// No qop (RFC 2069 form) and -sess: computed as RFC 2617 §3.2.2.2
    /// defines them.
    #[test]
    fn no_qop_and_sess() {
        let input = |body: &'static [u8]| DigestInput {
            username: "u",
            password: "p",
            method: "INVITE",
            uri: "sip:1@h",
            body,
        };
        let c = Challenge::pick(["Digest realm=\"r\", nonce=\"n\""]).expect("challenge");
        assert_eq!(c.qop, Qop::None);
        let md5 = |s: &str| hex(&md5::Md5::digest(s.as_bytes()));
        let ha1 = md5("u:r:p");
        let ha2 = md5("INVITE:sip:1@h");
        assert_eq!(
            c.response(&input(b""), "x", 1),
            md5(&format!("{ha1}:n:{ha2}"))
        );
        let h = c.authorization(&input(b""));
        assert!(!h.contains("qop") && !h.contains("cnonce"), "{h}");

        let c = Challenge::pick(["Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess, qop=auth"])
            .expect("challenge");
        let ha1s = md5(&format!("{ha1}:n:cn"));
        assert_eq!(
            c.response(&input(b""), "cn", 1),
            md5(&format!("{ha1s}:n:00000001:cn:auth:{ha2}"))
        );
        let c = Challenge::pick(["Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""])
            .expect("challenge");
        let ha2i = md5(&format!("INVITE:sip:1@h:{}", md5("v=0\r\n")));
        assert_eq!(
            c.response(&input(b"v=0\r\n"), "cn", 2),
            md5(&format!("{ha1}:n:00000002:cn:auth-int:{ha2i}"))
        );
    }

    #[test]
    fn unusable_challenges() {
        assert_eq!(
            Challenge::pick(["Basic realm=\"x\""]),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::pick(["Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256"]),
            Err(DigestError::Algorithm("SHA-512-256".into()))
        );
        assert_eq!(
            Challenge::pick(["Digest nonce=\"n\""]),
            Err(DigestError::Missing("realm"))
        );
        assert!(Challenge::pick(["Digest realm=\"x, nonce=\"n\""]).is_err());
        assert!(Challenge::pick(["Digest realm=\"x\", nonce=\"n\", algorithm=MD5-sess"]).is_err());
        // An unsupported one first, a usable one after: the usable one.
        let c = Challenge::pick([
            "Digest realm=\"a\", nonce=\"1\", algorithm=SHA-512-256",
            "Digest realm=\"b\", nonce=\"2\", stale=TRUE",
        ])
        .expect("challenge");
        assert_eq!((c.realm.as_str(), c.stale), ("b", true));
    }

    #[test]
    fn quoting() {
        let c = Challenge::pick([r#"Digest realm="a \"q\" b", nonce="n\\1""#]).expect("challenge");
        assert_eq!(c.realm, "a \"q\" b");
        assert_eq!(c.nonce, "n\\1");
        let h = c.authorization(&DigestInput {
            username: "u",
            password: "p",
            method: "INVITE",
            uri: "sip:1@h",
            body: b"",
        });
        assert!(h.contains(r#"realm="a \"q\" b""#), "{h}");
        assert!(h.contains(r#"nonce="n\\1""#), "{h}");
    }
}
