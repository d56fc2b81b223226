//! Table printers of the `flowcontrol.apiserver.k8s.io` group's kinds (API Priority and
//! Fairness), as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `flowschemas.flowcontrol.apiserver.k8s.io`.
pub struct FlowSchema;

impl TablePrinter for FlowSchema {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("PriorityLevel", "string", "`name` is the name of the priority level configuration being referenced Required."),
            col("MatchingPrecedence", "string", "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request. The chosen FlowSchema is among those with the numerically lowest (which we take to be logically highest) MatchingPrecedence.  Each MatchingPrecedence value must be ranged in [1,10000]. Note that if the precedence is not specified, it will be set to 1000 as default."),
            col("DistinguisherMethod", "string", "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema. `nil` specifies that the distinguisher is disabled and thus will always be the empty string."),
            AGE,
            col("MissingPL", "string", "references a broken or non-existent PriorityLevelConfiguration"),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let distinguisher = at(o, &["spec", "distinguisherMethod", "type"])
            .as_str()
            .unwrap_or("<none>");
        let missing = arr(o, &["status", "conditions"])
            .iter()
            .find(|c| c["type"] == "Dangling")
            .and_then(|c| c["status"].as_str())
            .unwrap_or("?");
        vec![
            name(o),
            st(o, &["spec", "priorityLevelConfiguration", "name"]).into(),
            int(o, &["spec", "matchingPrecedence"]).into(),
            distinguisher.into(),
            age(o, now),
            missing.into(),
        ]
    }
}

/// The table of `prioritylevelconfigurations.flowcontrol.apiserver.k8s.io`.
pub struct PriorityLevelConfiguration;

impl TablePrinter for PriorityLevelConfiguration {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Type", "string", "`type` indicates whether this priority level is subject to limitation on request execution.  A value of `\"Exempt\"` means that requests of this priority level are not subject to a limit (and thus are never queued) and do not detract from the capacity made available to other priority levels.  A value of `\"Limited\"` means that (a) requests of this priority level _are_ subject to limits and (b) some of the server's limited capacity is made available exclusively to this priority level. Required."),
            col("NominalConcurrencyShares", "string", "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level. This is the number of execution seats available at this priority level. This is used both for requests dispatched from this priority level as well as requests dispatched from other priority levels borrowing seats from this level. The server's concurrency limit (ServerCL) is divided among the Limited priority levels in proportion to their NCS values:\n\nNominalCL(i)  = ceil( ServerCL * NCS(i) / sum_ncs ) sum_ncs = sum[priority level k] NCS(k)\n\nBigger numbers mean a larger nominal concurrency limit, at the expense of every other priority level.\n\nIf not specified, this field defaults to a value of 30.\n\nSetting this field to zero supports the construction of a \"jail\" for this priority level that is used to hold some request(s)"),
            col("Queues", "string", "`queues` is the number of queues for this priority level. The queues exist independently at each apiserver. The value must be positive.  Setting it to 1 effectively precludes shufflesharding and thus makes the distinguisher method of associated flow schemas irrelevant.  This field has a default value of 64."),
            col("HandSize", "string", "`handSize` is a small positive number that configures the shuffle sharding of requests into queues.  When enqueuing a request at this priority level the request's flow identifier (a string pair) is hashed and the hash value is used to shuffle the list of queues and deal a hand of the size specified here.  The request is put into one of the shortest queues in that hand. `handSize` must be no larger than `queues`, and should be significantly smaller (so that a few heavy flows do not saturate most of the queues).  See the user-facing documentation for more extensive guidance on setting this field.  This field has a default value of 8."),
            col("QueueLengthLimit", "string", "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time; excess requests are rejected.  This value must be positive.  If not specified, it will be defaulted to 50."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let none = || Value::from("<none>");
        let limited = at(o, &["spec", "limited"]);
        let (mut shares, mut queues, mut hand, mut length) = (none(), none(), none(), none());
        if limited.is_object() {
            shares = opt_int(limited, &["nominalConcurrencyShares"])
                .unwrap_or(30)
                .into();
            let queuing = at(limited, &["limitResponse", "queuing"]);
            if queuing.is_object() {
                queues = int(queuing, &["queues"]).into();
                hand = int(queuing, &["handSize"]).into();
                length = int(queuing, &["queueLengthLimit"]).into();
            }
        }
        vec![
            name(o),
            st(o, &["spec", "type"]).into(),
            shares,
            queues,
            hand,
            length,
            age(o, now),
        ]
    }
}
