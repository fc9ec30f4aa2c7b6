//! What a result must look like before `compare` reads numbers out of it.
//! A field that is missing where it is required, or of the wrong type
//! where schedlab writes it, is refused (exit 64) with its name: read
//! leniently, a string where a number belongs would simply vanish from
//! the table and a regression would go unseen ("no regressions").
//!
//! Only what schedlab itself writes is checked here; an operation's own
//! `result` object is free-form, and a number in it that is something
//! else on the other side is caught when the pair is compared.

use serde_json::Value;
use std::path::Path;
use vmm::exit::{Failure, Result};

/// The JSON type of `v`, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The type a field must have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Str,
    Num,
    /// A whole number of 0 or more.
    Count,
    Obj,
    Arr,
}

impl Want {
    fn name(self) -> &'static str {
        match self {
            Want::Str => "a string",
            Want::Num => "a number",
            Want::Count => "a whole number of 0 or more",
            Want::Obj => "an object",
            Want::Arr => "an array",
        }
    }
    fn fits(self, v: &Value) -> bool {
        match self {
            Want::Str => v.is_string(),
            Want::Num => v.as_f64().is_some_and(f64::is_finite),
            Want::Count => v.is_u64(),
            Want::Obj => v.is_object(),
            Want::Arr => v.is_array(),
        }
    }
}

/// Fields every result has.
const REQUIRED: &[(&str, Want)] = &[
    ("/operation", Want::Str),
    ("/status", Want::Str),
    ("/versions", Want::Obj),
    ("/versions/schedlab", Want::Str),
];

/// Fields schedlab writes, possibly null (a run that failed early has
/// no metrics): when present and not null, of this type.
const TYPED: &[(&str, Want)] = &[
    ("/kind", Want::Str),
    ("/config", Want::Obj),
    ("/error", Want::Obj),
    ("/error/kind", Want::Str),
    ("/verdict", Want::Obj),
    ("/verdict/status", Want::Str),
    ("/totals", Want::Obj),
    ("/totals/units_per_sec", Want::Num),
    ("/metrics", Want::Obj),
    ("/metrics/max_fairness_error", Want::Num),
    ("/metrics/nr_running_imbalance", Want::Num),
    ("/metrics/switches", Want::Count),
    ("/metrics/migrations", Want::Count),
    ("/metrics/wake_latency", Want::Obj),
    ("/metrics/wake_latency/count", Want::Count),
    ("/metrics/wake_latency/p50_ns", Want::Num),
    ("/metrics/wake_latency/p99_ns", Want::Num),
    ("/metrics/wake_latency/max_ns", Want::Num),
    ("/metrics/tasks", Want::Arr),
    ("/cpus", Want::Arr),
    ("/stalls", Want::Arr),
    ("/timing", Want::Obj),
    ("/timing/first_message_us", Want::Count),
];

/// Arrays of objects, and the number each element's field must be.
const ELEMENTS: &[(&str, &str)] = &[("/metrics/tasks", "max_wait_ns"), ("/cpus", "utilisation")];

/// A JSON pointer as people write a field: "/metrics/tasks" -> "metrics.tasks".
fn field(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

fn wrong(path: &Path, field: &str, why: String) -> Failure {
    Failure::usage(format!(
        "{} is not a schedlab result: field \"{field}\" {why}: give a result.json written by \
         --out, or a saved --json report",
        path.display()
    ))
}

/// Refuse `v` unless it has the shape of a schedlab result.
pub fn check(path: &Path, v: &Value) -> Result<()> {
    if !v.is_object() {
        return Err(Failure::usage(format!(
            "{} is not a schedlab result (it is {}, not an object): give a result.json written \
             by --out, or a saved --json report",
            path.display(),
            type_name(v)
        )));
    }
    for &(p, want) in REQUIRED {
        match v.pointer(p) {
            None | Some(Value::Null) => {
                return Err(wrong(
                    path,
                    &field(p),
                    format!("is missing (it must be {})", want.name()),
                ));
            }
            Some(x) if !want.fits(x) => {
                return Err(wrong(
                    path,
                    &field(p),
                    format!("is {}, not {}", type_name(x), want.name()),
                ));
            }
            Some(_) => {}
        }
    }
    for &(p, want) in TYPED {
        if let Some(x) = v.pointer(p).filter(|x| !x.is_null())
            && !want.fits(x)
        {
            return Err(wrong(
                path,
                &field(p),
                format!("is {}, not {}", type_name(x), want.name()),
            ));
        }
    }
    if let Some(k) = v.get("kind").and_then(Value::as_str)
        && k != crate::outputs::RESULT_KIND
    {
        return Err(wrong(
            path,
            "kind",
            format!("is {k:?}, not {:?}", crate::outputs::RESULT_KIND),
        ));
    }
    for &(p, f) in ELEMENTS {
        let Some(items) = v.pointer(p).and_then(Value::as_array) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let name = format!("{}[{i}]", field(p));
            let Some(o) = item.as_object() else {
                return Err(wrong(
                    path,
                    &name,
                    format!("is {}, not an object", type_name(item)),
                ));
            };
            if let Some(x) = o.get(f).filter(|x| !x.is_null())
                && !Want::Num.fits(x)
            {
                return Err(wrong(
                    path,
                    &format!("{name}.{f}"),
                    format!("is {}, not a number", type_name(x)),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok() -> Value {
        json!({
            "kind": "schedlab-result",
            "operation": "spin",
            "status": "ok",
            "versions": {"schedlab": "0.1.0"},
            "config": {"cpus": 1},
            "totals": {"units_per_sec": 10.5},
            "metrics": {"wake_latency": {"count": 3, "p99_ns": 5}, "tasks": [{"max_wait_ns": 1}]},
            "cpus": [{"utilisation": 0.5}],
            "verdict": null,
            "error": null,
        })
    }

    fn refused(v: &Value) -> String {
        check(Path::new("r.json"), v).unwrap_err().message
    }

    #[test]
    fn a_result_as_schedlab_writes_it_passes() {
        check(Path::new("r.json"), &ok()).unwrap();
    }

    #[test]
    fn missing_required_fields_are_named() {
        for (p, name) in [
            ("/operation", "operation"),
            ("/status", "status"),
            ("/versions/schedlab", "versions.schedlab"),
        ] {
            let mut v = ok();
            *v.pointer_mut(p).unwrap() = Value::Null;
            let e = refused(&v);
            assert!(
                e.starts_with(&format!(
                    "r.json is not a schedlab result: field \"{name}\" is missing"
                )),
                "{e}"
            );
        }
        assert!(refused(&json!([1])).contains("it is an array, not an object"));
    }

    #[test]
    fn fields_of_the_wrong_type_are_named() {
        let mut v = ok();
        v["totals"]["units_per_sec"] = json!("fast");
        assert!(
            refused(&v).starts_with(
                "r.json is not a schedlab result: field \"totals.units_per_sec\" is a string, \
                 not a number"
            ),
            "{}",
            refused(&v)
        );
        let mut v = ok();
        v["metrics"]["wake_latency"]["count"] = json!(-1);
        assert!(refused(&v).contains("\"metrics.wake_latency.count\" is a number, not a whole"));
        let mut v = ok();
        v["cpus"][0]["utilisation"] = json!(true);
        assert!(refused(&v).contains("\"cpus[0].utilisation\" is a boolean, not a number"));
        let mut v = ok();
        v["metrics"]["tasks"] = json!([7]);
        assert!(refused(&v).contains("\"metrics.tasks[0]\" is a number, not an object"));
        let mut v = ok();
        v["kind"] = json!("something-else");
        assert!(refused(&v).contains("\"kind\" is \"something-else\""));
        let mut v = ok();
        v["config"] = json!(3);
        assert!(refused(&v).contains("\"config\" is a number, not an object"));
    }
}
