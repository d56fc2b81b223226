//! PriorityLevelConfigurations (`pkg/apis/flowcontrol/validation` and `v1` defaults): a level
//! is `Exempt` or `Limited`; a limited level's shares default to 30, its queuing to 64 queues,
//! hands of 8 and 50 requests a queue; the hand fits the deck and the shuffle sharding's
//! entropy stays within upstream's bound.

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::Strategy;
use crate::status::FieldError;

/// Upstream's default `nominalConcurrencyShares` of a limited level.
const DEFAULT_SHARES: i64 = 30;
/// Upstream's queuing defaults: queues, hand size, queue length limit.
const DEFAULT_QUEUING: (i64, i64, i64) = (64, 8, 50);
/// The largest hand size upstream's dealer takes.
pub const MAX_HAND_SIZE: i64 = 15;

/// The PriorityLevelConfiguration strategy.
pub struct PriorityLevelConfigurationStrategy;

impl Strategy for PriorityLevelConfigurationStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        default(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        default(new);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        let kind = spec["type"].as_str().unwrap_or("");
        match kind {
            "Exempt" => {
                if !spec["limited"].is_null() {
                    errors.push(FieldError::forbidden(
                        "spec.limited",
                        "must be nil if the type is not Limited",
                    ));
                }
                let exempt = &spec["exempt"];
                check_percent(exempt, "spec.exempt.lendablePercent", errors);
                if exempt["nominalConcurrencyShares"]
                    .as_i64()
                    .is_some_and(|s| s < 0)
                {
                    errors.push(FieldError::invalid_raw(
                        "spec.exempt.nominalConcurrencyShares",
                        exempt["nominalConcurrencyShares"].to_string(),
                        "must be a non-negative integer",
                    ));
                }
            }
            "Limited" => {
                if !spec["exempt"].is_null() {
                    errors.push(FieldError::forbidden(
                        "spec.exempt",
                        "must be nil if the type is Limited",
                    ));
                }
                let limited = &spec["limited"];
                if !limited.is_object() {
                    errors.push(FieldError::required(
                        "spec.limited",
                        "must not be empty when type is Limited",
                    ));
                    return;
                }
                validate_limited(limited, errors);
            }
            _ => errors.push(FieldError::not_supported(
                "spec.type",
                kind,
                &["Exempt", "Limited"],
            )),
        }
    }
}

fn check_percent(owner: &Value, field: &str, errors: &mut Vec<FieldError>) {
    let name = field.rsplit('.').next().unwrap_or(field);
    if let Some(p) = owner[name].as_i64() {
        if !(0..=100).contains(&p) {
            errors.push(FieldError::invalid_raw(
                field,
                p.to_string(),
                "must be between 0 and 100, inclusive",
            ));
        }
    }
}

fn validate_limited(limited: &Value, errors: &mut Vec<FieldError>) {
    if limited["nominalConcurrencyShares"]
        .as_i64()
        .is_some_and(|s| s < 0)
    {
        errors.push(FieldError::invalid_raw(
            "spec.limited.nominalConcurrencyShares",
            limited["nominalConcurrencyShares"].to_string(),
            "must be a non-negative integer",
        ));
    }
    check_percent(limited, "spec.limited.lendablePercent", errors);
    if limited["borrowingLimitPercent"]
        .as_i64()
        .is_some_and(|p| p < 0)
    {
        errors.push(FieldError::invalid_raw(
            "spec.limited.borrowingLimitPercent",
            limited["borrowingLimitPercent"].to_string(),
            "if specified, must be a non-negative integer",
        ));
    }
    let response = &limited["limitResponse"];
    match response["type"].as_str().unwrap_or("") {
        "Reject" => {
            if !response["queuing"].is_null() {
                errors.push(FieldError::forbidden(
                    "spec.limited.limitResponse.queuing",
                    "must be nil if limited.limitResponse.type is not Limited",
                ));
            }
        }
        "Queue" => {
            let queuing = &response["queuing"];
            if !queuing.is_object() {
                errors.push(FieldError::required(
                    "spec.limited.limitResponse.queuing",
                    "must not be empty if limited.limitResponse.type is Limited",
                ));
                return;
            }
            validate_queuing(queuing, errors);
        }
        other => errors.push(FieldError::not_supported(
            "spec.limited.limitResponse.type",
            other,
            &["Queue", "Reject"],
        )),
    }
}

fn validate_queuing(queuing: &Value, errors: &mut Vec<FieldError>) {
    const AT: &str = "spec.limited.limitResponse.queuing";
    let queues = queuing["queues"].as_i64().unwrap_or(0);
    let hand = queuing["handSize"].as_i64().unwrap_or(0);
    let length = queuing["queueLengthLimit"].as_i64().unwrap_or(0);
    if length <= 0 {
        errors.push(FieldError::invalid_raw(
            format!("{AT}.queueLengthLimit"),
            length.to_string(),
            "must be positive",
        ));
    }
    if queues <= 0 {
        errors.push(FieldError::invalid_raw(
            format!("{AT}.queues"),
            queues.to_string(),
            "must be positive",
        ));
        return;
    }
    if hand <= 0 {
        errors.push(FieldError::invalid_raw(
            format!("{AT}.handSize"),
            hand.to_string(),
            "must be positive",
        ));
    } else if hand > queues {
        errors.push(FieldError::invalid_raw(
            format!("{AT}.handSize"),
            hand.to_string(),
            format!("should not be greater than queues ({queues})"),
        ));
    } else if hand > MAX_HAND_SIZE || (hand as f64) * (queues as f64).log2() > 60.0 {
        // Upstream's `shufflesharding.RequiredEntropyBits`: the deal must fit in 60 bits.
        errors.push(FieldError::invalid_raw(
            format!("{AT}.handSize"),
            hand.to_string(),
            format!(
                "required entropy bits of deckSize {queues} and handSize {hand} should not be greater than 60"
            ),
        ));
    }
}

/// `v1`'s defaults.
fn default(object: &mut Value) {
    let spec = &mut object["spec"];
    match spec["type"].as_str() {
        Some("Limited") => {
            let limited = &mut spec["limited"];
            if !limited.is_object() {
                return;
            }
            if limited["nominalConcurrencyShares"].is_null() {
                limited["nominalConcurrencyShares"] = DEFAULT_SHARES.into();
            }
            if limited["lendablePercent"].is_null() {
                limited["lendablePercent"] = 0.into();
            }
            let response = &mut limited["limitResponse"];
            if response["type"] == "Queue" {
                let queuing = &mut response["queuing"];
                if !queuing.is_object() {
                    *queuing = json!({});
                }
                let (queues, hand, length) = DEFAULT_QUEUING;
                for (field, value) in [
                    ("queues", queues),
                    ("handSize", hand),
                    ("queueLengthLimit", length),
                ] {
                    if queuing[field].as_i64().unwrap_or(0) == 0 {
                        queuing[field] = value.into();
                    }
                }
            }
        }
        Some("Exempt") => {
            let exempt = &mut spec["exempt"];
            if !exempt.is_object() {
                *exempt = json!({});
            }
            for field in ["nominalConcurrencyShares", "lendablePercent"] {
                if exempt[field].is_null() {
                    exempt[field] = 0.into();
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{tests::resource, validate};

    #[test]
    fn defaults_and_upstream_rules() {
        let r = resource(
            "flowcontrol.apiserver.k8s.io",
            "v1",
            "prioritylevelconfigurations",
        );
        let mut ok = json!({"metadata": {"name": "mine"}, "spec": {"type": "Limited",
            "limited": {"limitResponse": {"type": "Queue"}}}});
        PriorityLevelConfigurationStrategy.prepare_for_create(&mut ok, None);
        assert_eq!(
            ok["spec"]["limited"],
            json!({"nominalConcurrencyShares": 30, "lendablePercent": 0,
                "limitResponse": {"type": "Queue", "queuing": {"queues": 64, "handSize": 8, "queueLengthLimit": 50}}})
        );
        validate(r, &ok, None).expect("valid");
        let mut exempt = json!({"metadata": {"name": "e"}, "spec": {"type": "Exempt"}});
        PriorityLevelConfigurationStrategy.prepare_for_create(&mut exempt, None);
        assert_eq!(
            exempt["spec"]["exempt"],
            json!({"nominalConcurrencyShares": 0, "lendablePercent": 0})
        );
        let bad = json!({"metadata": {"name": "bad"}, "spec": {"type": "Limited",
            "limited": {"nominalConcurrencyShares": -1, "lendablePercent": 101,
                "limitResponse": {"type": "Queue", "queuing": {"queues": 4, "handSize": 5, "queueLengthLimit": 0}}}}});
        let err = validate(r, &bad, None).expect_err("invalid");
        for expected in [
            "spec.limited.nominalConcurrencyShares: Invalid value: -1: must be a non-negative integer",
            "spec.limited.lendablePercent: Invalid value: 101: must be between 0 and 100, inclusive",
            "spec.limited.limitResponse.queuing.queueLengthLimit: Invalid value: 0: must be positive",
            "spec.limited.limitResponse.queuing.handSize: Invalid value: 5: should not be greater than queues (4)",
        ] {
            assert!(err.message.contains(expected), "{expected} in {}", err.message);
        }
        let err = validate(
            r,
            &json!({"metadata": {"name": "x"}, "spec": {"type": "Fast"}}),
            None,
        )
        .expect_err("type");
        assert!(
            err.message
                .contains("spec.type: Unsupported value: \"Fast\""),
            "{}",
            err.message
        );
    }
}
