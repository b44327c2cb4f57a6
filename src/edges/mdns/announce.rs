//! What this node announces: `<node>._smollama._tcp.local.` on host `<node>.local.`, its
//! LAN addresses and HTTP port, and TXT `node_type`, `version`, `capabilities`; and how a
//! peer's announcement is read back.

use mdns_sd::{ResolvedService, ServiceInfo};

use crate::nodes::{Announcement, Capabilities};

/// `_smollama._tcp` → `_smollama._tcp.local.`.
pub fn ty_domain(service_type: &str) -> String {
    format!("{service_type}.local.")
}

/// The service record for `node`. The host name is the node's, not the machine's: two
/// nodes on one machine (or in two network namespaces of it) must not share address
/// records.
pub fn service(ty: &str, node: &str, own: &Announcement) -> Result<ServiceInfo, String> {
    let caps = own.capabilities.to_txt();
    let props = [
        ("node_type", own.node_type.as_str()),
        ("version", own.version.as_str()),
        ("capabilities", caps.as_str()),
    ];
    let host = format!("{node}.local.");
    ServiceInfo::new(ty, node, &host, &own.addresses[..], own.port, &props[..])
        .map(ServiceInfo::enable_addr_auto)
        .map_err(|e| e.to_string())
}

/// The node name of an instance (`kitchen._smollama._tcp.local.` → `kitchen`).
pub fn instance_name<'a>(fullname: &'a str, ty: &str) -> Option<&'a str> {
    fullname.strip_suffix(ty)?.strip_suffix('.')
}

/// A resolved peer as the directory keeps it; unroutable addresses left out.
pub fn announcement(r: &ResolvedService) -> Announcement {
    let mut addresses: Vec<std::net::IpAddr> = r
        .get_addresses()
        .iter()
        .map(|a| a.to_ip_addr())
        .filter(super::interfaces::lan_unicast)
        .collect();
    addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    let txt = |k: &str| r.get_property_val_str(k).unwrap_or("").to_string();
    Announcement {
        addresses,
        port: r.get_port(),
        node_type: txt("node_type"),
        version: txt("version"),
        capabilities: Capabilities::from_txt(&txt("capabilities")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_carries_the_txt_records_and_reads_back() {
        let own = Announcement {
            addresses: vec!["10.77.0.1".parse().unwrap()],
            port: 18080,
            node_type: "alpaca".into(),
            version: "0.1.0".into(),
            capabilities: Capabilities {
                sources: 3,
                tools: 0,
                llm: false,
            },
        };
        let ty = ty_domain("_smollama._tcp");
        let s = service(&ty, "kitchen", &own).unwrap();
        assert_eq!(s.get_fullname(), "kitchen._smollama._tcp.local.");
        assert_eq!(s.get_hostname(), "kitchen.local.");
        assert_eq!(
            s.get_property_val_str("capabilities"),
            Some("sources=3,tools=0,llm=no")
        );
        assert_eq!(instance_name(s.get_fullname(), &ty), Some("kitchen"));
        let back = announcement(&s.as_resolved_service());
        assert_eq!(back, own);
    }
}
