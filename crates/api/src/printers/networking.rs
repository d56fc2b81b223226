//! Table printers of the `networking.k8s.io` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `ingresses.networking.k8s.io`.
pub struct Ingress;

impl TablePrinter for Ingress {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
            col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
            col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
            col("Ports", "string", "Ports of TLS configurations that open"),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let class = at(o, &["spec", "ingressClassName"])
            .as_str()
            .unwrap_or("<none>")
            .to_string();
        let rules = arr(o, &["spec", "rules"]);
        let ports = if arr(o, &["spec", "tls"]).is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            name(o),
            class.into(),
            format_hosts(rules).into(),
            load_balancer_status(arr(o, &["status", "loadBalancer", "ingress"])).into(),
            ports.into(),
            age(o, now),
        ]
    }
}

/// The table of `ingressclasses.networking.k8s.io`.
pub struct IngressClass;

impl TablePrinter for IngressClass {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Controller",
                "string",
                "Controller that is responsible for handling this class",
            ),
            col(
                "Parameters",
                "string",
                "A reference to a resource with additional parameters",
            ),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let p = at(o, &["spec", "parameters"]);
        let parameters = if p.is_null() {
            "<none>".to_string()
        } else {
            let mut s = st(p, &["kind"]).to_string();
            if let Some(g) = at(p, &["apiGroup"]).as_str() {
                s.push('.');
                s.push_str(g);
            }
            s.push('/');
            s.push_str(st(p, &["name"]));
            s
        };
        vec![
            name(o),
            st(o, &["spec", "controller"]).into(),
            parameters.into(),
            age(o, now),
        ]
    }
}

/// The table of `networkpolicies.networking.k8s.io`.
pub struct NetworkPolicy;

impl TablePrinter for NetworkPolicy {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Pod-Selector", "string", "Selects the pods to which this NetworkPolicy object applies. The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![
            name(o),
            // podSelector is not a pointer upstream: absent means empty.
            match selector_string(at(o, &["spec", "podSelector"])) {
                Ok(s) if s.is_empty() => "<none>".to_string(),
                Ok(s) => s,
                Err(()) => "<error>".to_string(),
            }
            .into(),
            age(o, now),
        ]
    }
}

/// The table of `ipaddresses.networking.k8s.io`.
pub struct IpAddress;

impl TablePrinter for IpAddress {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("ParentRef", "string", "ParentRef references the resource that an IPAddress is attached to. An IPAddress must reference a parent object."),
        ]
    }

    fn row(&self, o: &Value, _now: i128) -> Vec<Value> {
        vec![name(o), parent_ref(o).into()]
    }
}

/// The table of `servicecidrs.networking.k8s.io`.
pub struct ServiceCidr;

impl TablePrinter for ServiceCidr {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("CIDRs", "string", "CIDRs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or \"2001:db8::/64\") from which to assign service cluster IPs. Max of two CIDRs is allowed, one of each IP family. This field is immutable."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![
            name(o),
            arr(o, &["spec", "cidrs"])
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
                .into(),
            age(o, now),
        ]
    }
}
