//! How the model-server clients find their server's address: a host written as an IP
//! address (`127.0.0.1`, `[::1]`, the usual case for a local Ollama) is its own address,
//! looked up by nobody; any other name goes to ureq's own resolver.
//!
//! Why: with a timeout set (ours always are), ureq's resolver runs every lookup on a new
//! unnamed thread, so each chat round started and joined a thread only to parse
//! `127.0.0.1`.

use std::net::{IpAddr, SocketAddr};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Resolves IP-literal hosts at once, on the caller's thread; names as ureq does.
#[derive(Debug, Default)]
pub(crate) struct LiteralFirst {
    names: DefaultResolver,
}

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match literal(uri) {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.names.resolve(uri, config, timeout),
        }
    }
}

/// The address of a URI whose host is an IP address, with its port or the scheme's.
fn literal(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let port = match (uri.port_u16(), uri.scheme_str()) {
        (Some(p), _) => p,
        (None, Some("http")) => 80,
        (None, Some("https")) => 443,
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Option<SocketAddr> {
        literal(&s.parse().unwrap())
    }

    #[test]
    fn ip_hosts_are_their_own_address_and_names_are_not() {
        assert_eq!(
            lit("http://127.0.0.1:11434/api/chat"),
            Some("127.0.0.1:11434".parse().unwrap())
        );
        assert_eq!(
            lit("http://[::1]:8080/v1"),
            Some("[::1]:8080".parse().unwrap())
        );
        assert_eq!(
            lit("http://10.0.0.2/api"),
            Some("10.0.0.2:80".parse().unwrap())
        );
        assert_eq!(
            lit("https://10.0.0.2/v1"),
            Some("10.0.0.2:443".parse().unwrap())
        );
        assert_eq!(lit("http://localhost:11434/api"), None);
        assert_eq!(lit("http://ollama.lan/api"), None);
    }
}
