//! The admin API's answers as text for a person.

use serde_json::Value;

pub fn json(answer: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(answer).unwrap_or_default()
    );
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// `handlers list`: one row per handler.
pub fn handler_table(answer: &Value) {
    let handlers = answer.as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<[String; 6]> = handlers
        .iter()
        .map(|handler| {
            let job_types = match &handler["JobTypes"] {
                Value::Array(types) if types.is_empty() => "(all)".to_owned(),
                Value::Null => "(all)".to_owned(),
                types => text(types),
            };
            [
                text(&handler["Name"]),
                text(&handler["ClassName"]),
                if handler["Enabled"] == Value::Bool(true) {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
                text(&handler["SupportedEvents"]),
                job_types,
                if handler["DropIn"] == Value::Bool(true) {
                    "drop-in"
                } else {
                    ""
                }
                .to_owned(),
            ]
        })
        .collect();
    let header = ["NAME", "LIBRARY", "ENABLED", "EVENTS", "JOB TYPES", ""].map(str::to_owned);
    let mut widths = [0; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

/// `handlers show`: every field, settings indented.
pub fn handler(answer: &Value) {
    let Some(fields) = answer.as_object() else {
        return json(answer);
    };
    for (key, value) in fields {
        match value {
            Value::Object(settings) => {
                println!("{key}:");
                for (key, value) in settings {
                    println!("  {key} = {}", text(value));
                }
            }
            value => println!("{key}: {}", text(value)),
        }
    }
}

/// A change that was applied.
pub fn change(answer: &Value) {
    match answer["message"].as_str() {
        Some(message) => println!("{message}"),
        None => json(answer),
    }
}

pub fn reloaded(answer: &Value) {
    println!("config reloaded: {} handler(s)", text(&answer["handlers"]));
    for warning in answer["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}", text(warning));
    }
}

/// One line of `jobhook tail`.
pub fn live(line: &str) {
    let Ok(entry) = serde_json::from_str::<Value>(line) else {
        return println!("{line}");
    };
    let now = jiff::Zoned::now().strftime("%H:%M:%S%.3f");
    match entry["type"].as_str() {
        Some("accepted") => println!(
            "{now} accepted  {} {} {} {}",
            text(&entry["phase"]),
            text(&entry["JobType"]),
            text(&entry["JobId"]),
            text(&entry["id"]),
        ),
        Some("outcome") => {
            let error = entry["error"]
                .as_str()
                .map(|error| format!(": {error}"))
                .unwrap_or_default();
            println!(
                "{now} {:<9} {} {} ({:.1} ms){error}",
                text(&entry["outcome"]),
                text(&entry["handler"]),
                text(&entry["id"]),
                entry["duration_ms"].as_f64().unwrap_or_default(),
            );
        }
        Some("missed") => println!(
            "{now} … {} entries missed (this tail fell behind)",
            text(&entry["missed"])
        ),
        _ => println!("{line}"),
    }
}
