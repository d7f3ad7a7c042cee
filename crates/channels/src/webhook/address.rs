//! Which addresses a webhook may reach. A workflow author chooses the URL, so without these checks
//! a webhook step could make Rapport's server call its own admin port, the cloud metadata service
//! or anything else on the private network (server-side request forgery).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Host;

/// Which non-public addresses webhooks may call. The default refuses every loopback, private,
/// link-local and reserved address; an operator opens specific hosts or ranges (a test receiver
/// on 127.0.0.1, an internal service in 10.0.0.0/8) with [`AddressPolicy::new`].
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow_private: bool,
    nets: Vec<Net>,
    /// Lower case, without a trailing dot.
    hosts: Vec<String>,
}

/// An allow-list entry that is not a host name, IP address or CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook allow-list entry '{entry}' {problem}")]
pub struct PolicyError {
    entry: String,
    problem: String,
}

impl AddressPolicy {
    /// `allow_private` opens every address (for a closed network). Each `allowed_hosts` entry is a
    /// host name (trusted whatever it resolves to), an IP address or a CIDR range such as
    /// `10.0.0.0/8`; addresses are read the way URLs read them, so `127.1` means `127.0.0.1`.
    pub fn new<I, S>(allow_private: bool, allowed_hosts: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut policy = Self { allow_private, ..Self::default() };
        for raw in allowed_hosts {
            let raw = raw.as_ref();
            let fail = |problem: String| PolicyError { entry: raw.to_owned(), problem };
            match parse_entry(raw.trim()).map_err(fail)? {
                Entry::Net(net) => policy.nets.push(net),
                Entry::Host(host) => policy.hosts.push(host),
            }
        }
        Ok(policy)
    }

    /// Whether `host` (a DNS name) is on the allow list by name.
    pub(crate) fn allows_host_name(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.hosts.contains(&host)
    }

    /// Ok for a public address or one the policy opens; otherwise why it is refused.
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), NotPublic> {
        let Some(why) = not_public(ip) else { return Ok(()) };
        let listed = |ip: IpAddr| self.nets.iter().any(|net| net.contains(ip));
        if self.allow_private || listed(ip) || why.embedded.is_some_and(|v4| listed(IpAddr::V4(v4))) { Ok(()) } else { Err(why) }
    }
}

enum Entry {
    Net(Net),
    Host(String),
}

fn parse_entry(entry: &str) -> Result<Entry, String> {
    if entry.is_empty() {
        return Err("is empty".into());
    }
    if entry.contains("://") {
        return Err("is a URL; give only its host name or address".into());
    }
    if let Some((addr, prefix)) = entry.split_once('/') {
        let ip: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| "is not a CIDR range: the part before '/' must be an IP address such as 10.0.0.0".to_owned())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("is not a CIDR range: the prefix length must be a number from 0 to {max}"))?;
        let net = Net::new(ip, prefix);
        if !net.is_exact(ip) {
            return Err(format!("has address bits set past the /{prefix} prefix; write it as {net}"));
        }
        return Ok(Entry::Net(net));
    }
    // Unbracketed IPv6 first: the URL host parser only takes it in brackets.
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(Entry::Net(Net::single(ip)));
    }
    match Host::parse(entry) {
        Ok(Host::Ipv4(ip)) => Ok(Entry::Net(Net::single(IpAddr::V4(ip)))),
        Ok(Host::Ipv6(ip)) => Ok(Entry::Net(Net::single(IpAddr::V6(ip)))),
        Ok(Host::Domain(name)) if is_dns_name(&normalize_host(&name)) => Ok(Entry::Host(normalize_host(&name))),
        _ => Err("is not a host name, IP address or CIDR range (wildcards are not supported)".into()),
    }
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
}

fn is_localhost_name(host: &str) -> bool {
    let host = normalize_host(host);
    host == "localhost" || host.ends_with(".localhost")
}

/// `Example.COM.` and `example.com` name the same host.
fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// Why an address is not a public one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotPublic {
    pub(crate) reason: &'static str,
    /// The IPv4 address an IPv6 form (mapped, compatible, NAT64, 6to4) carries, when that is
    /// what was judged.
    pub(crate) embedded: Option<Ipv4Addr>,
}

impl fmt::Display for NotPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some(v4) => write!(f, "which carries {v4}, {}", self.reason),
            None => f.write_str(self.reason),
        }
    }
}

const PRIVATE: &str = "a private address";
const LOOPBACK: &str = "a loopback address";
const LINK_LOCAL: &str = "a link-local address (the range of cloud metadata services)";
const DOCUMENTATION: &str = "a documentation address";
const MULTICAST: &str = "a multicast address";

const V4_RANGES: &[(Net, &str)] = &[
    (Net::v4([0, 0, 0, 0], 8), "an unspecified (\"this network\") address"),
    (Net::v4([10, 0, 0, 0], 8), PRIVATE),
    (Net::v4([100, 64, 0, 0], 10), "a carrier-grade NAT address (100.64.0.0/10)"),
    (Net::v4([127, 0, 0, 0], 8), LOOPBACK),
    (Net::v4([169, 254, 0, 0], 16), LINK_LOCAL),
    (Net::v4([172, 16, 0, 0], 12), PRIVATE),
    (Net::v4([192, 0, 0, 0], 24), "a reserved address (IETF protocol assignments)"),
    (Net::v4([192, 0, 2, 0], 24), DOCUMENTATION),
    (Net::v4([192, 88, 99, 0], 24), "a reserved address (the former 6to4 relay range)"),
    (Net::v4([192, 168, 0, 0], 16), PRIVATE),
    (Net::v4([198, 18, 0, 0], 15), "a reserved address (benchmarking)"),
    (Net::v4([198, 51, 100, 0], 24), DOCUMENTATION),
    (Net::v4([203, 0, 113, 0], 24), DOCUMENTATION),
    (Net::v4([224, 0, 0, 0], 4), MULTICAST),
    // Before 240.0.0.0/4, which holds it, for the clearer name.
    (Net::v4([255, 255, 255, 255], 32), "the broadcast address"),
    (Net::v4([240, 0, 0, 0], 4), "a reserved address (240.0.0.0/4)"),
];

const V6_RANGES: &[(Net, &str)] = &[
    (Net::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "a private address (local-use NAT64)"),
    (Net::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "a reserved address (discard-only)"),
    (Net::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), DOCUMENTATION),
    (Net::v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), DOCUMENTATION),
    // Teredo (2001::/32) hides its IPv4 address; refusing the whole block loses nothing a webhook needs.
    (Net::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), "a reserved address (IETF protocol assignments, Teredo)"),
    (Net::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "a private address (unique local, fc00::/7)"),
    (Net::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "a link-local address"),
    (Net::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "a site-local address"),
    (Net::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), MULTICAST),
];

const V4_MAPPED: Net = Net::v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96);
const V4_COMPATIBLE: Net = Net::v6([0, 0, 0, 0, 0, 0, 0, 0], 96);
const NAT64: Net = Net::v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const SIX_TO_FOUR: Net = Net::v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);
const GLOBAL_UNICAST: Net = Net::v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// None for a public address; otherwise what kind of address it is. IPv6 forms that carry an
/// IPv4 address are judged by that address, since that is where the packets end up.
pub(crate) fn not_public(ip: IpAddr) -> Option<NotPublic> {
    let v6 = match ip {
        IpAddr::V4(v4) => return v4_reason(v4).map(|reason| NotPublic { reason, embedded: None }),
        IpAddr::V6(v6) => v6,
    };
    if v6.is_unspecified() {
        return Some(NotPublic { reason: "the unspecified address", embedded: None });
    }
    if v6.is_loopback() {
        return Some(NotPublic { reason: LOOPBACK, embedded: None });
    }
    if let Some(v4) = embedded_v4(v6) {
        return v4_reason(v4).map(|reason| NotPublic { reason, embedded: Some(v4) });
    }
    let reason = V6_RANGES.iter().find(|(net, _)| net.contains(ip)).map(|(_, reason)| *reason);
    let reason =
        reason.or_else(|| (!GLOBAL_UNICAST.contains(ip)).then_some("a reserved address (outside global unicast 2000::/3)"));
    reason.map(|reason| NotPublic { reason, embedded: None })
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    V4_RANGES.iter().find(|(net, _)| net.contains(IpAddr::V4(ip))).map(|(_, reason)| *reason)
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    let any = IpAddr::V6(ip);
    if V4_MAPPED.contains(any) || V4_COMPATIBLE.contains(any) || NAT64.contains(any) {
        Some(Ipv4Addr::from_bits(bits as u32))
    } else if SIX_TO_FOUR.contains(any) {
        Some(Ipv4Addr::from_bits((bits >> 80) as u32))
    } else {
        None
    }
}

/// An address range. `bits` has no bits set past `prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    V4 { bits: u32, prefix: u8 },
    V6 { bits: u128, prefix: u8 },
}

impl Net {
    const fn v4(octets: [u8; 4], prefix: u8) -> Self {
        Net::V4 { bits: u32::from_be_bytes(octets), prefix }
    }

    const fn v6(s: [u16; 8], prefix: u8) -> Self {
        Net::V6 { bits: Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]).to_bits(), prefix }
    }

    fn new(ip: IpAddr, prefix: u8) -> Self {
        match ip {
            IpAddr::V4(ip) => Net::V4 { bits: ip.to_bits() & mask32(prefix), prefix },
            IpAddr::V6(ip) => Net::V6 { bits: ip.to_bits() & mask128(prefix), prefix },
        }
    }

    fn single(ip: IpAddr) -> Self {
        Net::new(ip, if ip.is_ipv4() { 32 } else { 128 })
    }

    fn contains(self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Net::V4 { bits, prefix }, IpAddr::V4(ip)) => ip.to_bits() & mask32(prefix) == bits,
            (Net::V6 { bits, prefix }, IpAddr::V6(ip)) => ip.to_bits() & mask128(prefix) == bits,
            _ => false,
        }
    }

    /// Whether `ip` is the range's first address, i.e. was written without host bits.
    fn is_exact(self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Net::V4 { bits, .. }, IpAddr::V4(ip)) => ip.to_bits() == bits,
            (Net::V6 { bits, .. }, IpAddr::V6(ip)) => ip.to_bits() == bits,
            _ => false,
        }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Net::V4 { bits, prefix } => write!(f, "{}/{prefix}", Ipv4Addr::from_bits(bits)),
            Net::V6 { bits, prefix } => write!(f, "{}/{prefix}", Ipv6Addr::from_bits(bits)),
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// A DNS name resolved to an address the policy refuses. The resolver returns it through
/// reqwest, and delivery finds it again in the error's source chain to report `Refused`.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, {why}")]
pub(crate) struct ResolvedToRefused {
    pub(crate) host: String,
    pub(crate) ip: IpAddr,
    pub(crate) why: NotPublic,
}

/// reqwest's resolver for webhooks. Checking the addresses here, rather than before the request,
/// means the connection goes to exactly the addresses checked: a DNS server cannot answer a public
/// address to the check and a private one to the connection (DNS rebinding).
pub(crate) struct PolicyResolver {
    pub(crate) policy: Arc<AddressPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve_checked(&policy, &host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Every address `host` resolves to, or an error if any of them is refused: a name with one
/// private address among public ones could still be connected to that one.
pub(crate) async fn resolve_checked(
    policy: &AddressPolicy,
    host: &str,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    // Port 0: reqwest puts the URL's port in.
    let addrs: Vec<SocketAddr> = if is_localhost_name(host) {
        // RFC 6761: `localhost` and `*.localhost` are this machine whatever DNS says (curl and
        // browsers answer them the same way), and `localhost.` is not in every hosts file.
        vec![(Ipv4Addr::LOCALHOST, 0).into(), (Ipv6Addr::LOCALHOST, 0).into()]
    } else {
        tokio::net::lookup_host((host, 0)).await?.collect()
    };
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address").into());
    }
    if !policy.allows_host_name(host) {
        for addr in &addrs {
            policy.check_ip(addr.ip()).map_err(|why| ResolvedToRefused { host: host.to_owned(), ip: addr.ip(), why })?;
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_reserved_addresses_are_not_public() {
        for (addr, reason) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("10.0.0.5", "private"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.255", "carrier-grade NAT"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a00:1::1", "private"),
            ("2001::1", "Teredo"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("100::1", "discard"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("4000::1", "outside global unicast"),
        ] {
            let why = not_public(ip(addr)).unwrap_or_else(|| panic!("{addr} judged public"));
            assert!(why.to_string().contains(reason), "{addr}: {why}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(not_public(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn embedded_ipv4_is_reported() {
        let why = not_public(ip("::ffff:127.0.0.1")).unwrap();
        assert_eq!(why.embedded, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(why.to_string(), "which carries 127.0.0.1, a loopback address");
    }

    #[test]
    fn default_policy_refuses_and_allow_list_opens() {
        let closed = AddressPolicy::default();
        assert!(closed.check_ip(ip("10.1.2.3")).is_err());
        assert!(closed.check_ip(ip("93.184.215.14")).is_ok());

        let open = AddressPolicy::new(true, [] as [&str; 0]).unwrap();
        assert!(open.check_ip(ip("127.0.0.1")).is_ok());
        assert!(open.check_ip(ip("fe80::1")).is_ok());

        let listed = AddressPolicy::new(false, ["127.0.0.1", "10.0.0.0/8", "fc00::/7", " hooks.internal. "]).unwrap();
        for ok in ["127.0.0.1", "10.200.3.4", "::ffff:127.0.0.1", "64:ff9b::a01:203", "fd00::5"] {
            assert!(listed.check_ip(ip(ok)).is_ok(), "{ok}");
        }
        for refused in ["127.0.0.2", "192.168.0.1", "::1", "169.254.169.254"] {
            assert!(listed.check_ip(ip(refused)).is_err(), "{refused}");
        }
        assert!(listed.allows_host_name("HOOKS.internal."));
        assert!(!listed.allows_host_name("internal"));
    }

    #[test]
    fn allow_list_entries_are_read_like_url_hosts() {
        let policy = AddressPolicy::new(false, ["0x7f.1", "[::1]", "::2", "Localhost."]).unwrap();
        assert!(policy.check_ip(ip("127.0.0.1")).is_ok());
        assert!(policy.check_ip(ip("::1")).is_ok());
        assert!(policy.check_ip(ip("::2")).is_ok());
        assert!(policy.allows_host_name("localhost"));
    }

    #[test]
    fn bad_allow_list_entries_are_named() {
        for (entry, problem) in [
            ("", "is empty"),
            ("10.0.0.1/8", "write it as 10.0.0.0/8"),
            ("10.0.0.0/33", "from 0 to 32"),
            ("fc00::/200", "from 0 to 128"),
            ("example.com/8", "must be an IP address"),
            ("*.example.com", "wildcards"),
            ("http://example.com", "give only its host name"),
            ("a..b", "is not a host name"),
        ] {
            let err = AddressPolicy::new(false, ["127.0.0.1", entry]).unwrap_err().to_string();
            assert!(err.contains(&format!("'{entry}'")) && err.contains(problem), "{entry}: {err}");
        }
    }

    #[tokio::test]
    async fn every_resolved_address_is_checked() {
        for host in ["localhost", "localhost.", "LocalHost", "app.localhost", "127.0.0.1"] {
            let err = resolve_checked(&AddressPolicy::default(), host).await.unwrap_err();
            let refused = err.downcast_ref::<ResolvedToRefused>().unwrap_or_else(|| panic!("{host}: {err}"));
            assert_eq!(refused.ip, Ipv4Addr::LOCALHOST, "{host}");
        }
        // ::1 is refused too: one private address among allowed ones is enough to refuse.
        let v4_only = AddressPolicy::new(false, ["127.0.0.1"]).unwrap();
        let err = resolve_checked(&v4_only, "localhost").await.unwrap_err();
        assert_eq!(err.downcast_ref::<ResolvedToRefused>().unwrap().ip, Ipv6Addr::LOCALHOST);

        let by_name = AddressPolicy::new(false, ["localhost"]).unwrap();
        assert_eq!(resolve_checked(&by_name, "localhost.").await.unwrap().len(), 2);
        let by_address = AddressPolicy::new(false, ["127.0.0.0/8", "::1"]).unwrap();
        assert!(!resolve_checked(&by_address, "localhost").await.unwrap().is_empty());
        assert!(!resolve_checked(&by_address, "127.0.0.1").await.unwrap().is_empty());
    }
}
