//! Table printers of the `discovery.k8s.io` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `endpointslices.discovery.k8s.io`.
pub struct EndpointSlice;

impl TablePrinter for EndpointSlice {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name."),
            col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates \"all ports\". Each slice may include a maximum of 100 ports."),
            col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        endpoint_slice_row(o, now)
    }
}

pub(super) fn endpoint_slice_row(o: &Value, now: i128) -> Vec<Value> {
    const MAX: usize = 3;
    let mut ports = vec![];
    let mut count = 0;
    for p in arr(o, &["ports"]) {
        if ports.len() < MAX {
            let port = match opt_int(p, &["port"]) {
                Some(n) => n.to_string(),
                None => match at(p, &["name"]).as_str() {
                    Some(n) => n.to_string(),
                    None => "*".to_string(),
                },
            };
            ports.push(port);
        }
        count += 1;
    }
    let ports = list_with_more(&ports, count, MAX);
    let mut addrs = vec![];
    let mut count = 0;
    for e in arr(o, &["endpoints"]) {
        for a in arr(e, &["addresses"]) {
            if addrs.len() < MAX {
                addrs.push(a.as_str().unwrap_or("").to_string());
            }
            count += 1;
        }
    }
    let endpoints = list_with_more(&addrs, count, MAX);
    vec![
        name(o),
        st(o, &["addressType"]).into(),
        ports.into(),
        endpoints.into(),
        age(o, now),
    ]
}
