//! CronJobs (`pkg/registry/batch/cronjob`): upstream's defaults; names are DNS labels (the
//! Jobs they make append a suffix).

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::core::pod::default_template;
use crate::registry::generic::default;
use crate::registry::{NameRule, Strategy};

/// The CronJob strategy.
pub struct CronJobStrategy;

impl Strategy for CronJobStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        if let Some(spec) = object.get_mut("spec") {
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
        }
        default_template(object, "/spec/jobTemplate/spec/template/spec");
    }
}
