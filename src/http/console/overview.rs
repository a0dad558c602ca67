//! The console's overview: this replica's last hour, minute by minute (`metrics::recent`):
//! tokens issued by grant, sign-in failures, refresh-token reuse detections and p99 latency,
//! as counts and small bar charts drawn here as plain SVG (no script, no chart library).

use actix_web::{HttpRequest, HttpResponse};
use minijinja::context;
use serde_json::json;

use super::{State, admin_user, failed, render, value};
use crate::metrics::recent::{self, BUCKETS, Minute};
use crate::model::GrantType;
use crate::protocol::admin;

/// A bar chart of one value per minute, oldest left; each bar's `<title>` holds its value.
pub fn bars(values: &[f64], unit: &str) -> String {
    const W: f64 = 4.0;
    const GAP: f64 = 1.0;
    const H: f64 = 48.0;
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let width = values.len() as f64 * (W + GAP);
    let mut svg = format!(
        r##"<svg class="chart" role="img" viewBox="0 0 {width} {H}" width="{width}" height="{H}" xmlns="http://www.w3.org/2000/svg"><rect x="0" y="{}" width="{width}" height="1" fill="#c9ced8"/>"##,
        H - 1.0
    );
    for (i, v) in values.iter().enumerate() {
        let h = if max > 0.0 {
            (v / max * (H - 2.0)).max(1.0)
        } else {
            0.0
        };
        if *v <= 0.0 {
            continue;
        }
        let minutes_ago = values.len() - 1 - i;
        svg.push_str(&format!(
            r##"<rect x="{:.0}" y="{:.1}" width="{W}" height="{h:.1}" fill="#2354d6"><title>{} {unit}, {minutes_ago} min ago</title></rect>"##,
            i as f64 * (W + GAP),
            H - 1.0 - h,
            trim(*v),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// `3`, `2.5`, `0.005`: a value without trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Milliseconds, for p99 (`>10000` past the last bucket).
fn ms(seconds: Option<f64>) -> String {
    match seconds {
        None => "no requests".to_owned(),
        Some(s) if s.is_infinite() => format!(">{} ms", trim(BUCKETS[BUCKETS.len() - 1] * 1000.0)),
        Some(s) => format!("≤{} ms", trim(s * 1000.0)),
    }
}

pub async fn overview(req: HttpRequest, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let hour: Vec<Minute> = state.ctx.metrics.recent.last_hour();
    let series = |f: &dyn Fn(&Minute) -> f64| hour.iter().map(f).collect::<Vec<f64>>();
    let mut all_latency = [0u64; BUCKETS.len() + 1];
    for m in &hour {
        for (a, b) in all_latency.iter_mut().zip(m.latency) {
            *a += b;
        }
    }
    let grants: Vec<_> = GrantType::ALL
        .iter()
        .enumerate()
        .map(|(i, g)| {
            // The device grant's name is a URN: its last part reads better on a card.
            let name = g.as_str().rsplit(':').next().unwrap_or(g.as_str());
            json!({ "grant": name, "count": hour.iter().map(|m| m.tokens[i]).sum::<u64>() })
        })
        .collect();
    let p99 = |m: &Minute| {
        recent::quantile(&m.latency, 0.99).map_or(0.0, |s| {
            if s.is_infinite() {
                BUCKETS[BUCKETS.len() - 1] * 2000.0
            } else {
                s * 1000.0
            }
        })
    };
    // Drawn here from numbers only, so they are safe to insert as markup.
    let chart =
        |values: Vec<f64>, unit: &str| minijinja::Value::from_safe_string(bars(&values, unit));
    let counts = async {
        let apps = admin::list_clients(&state.ctx).await?;
        let users = state.ctx.store.blocking(|s| s.count_users()).await?;
        Ok::<_, crate::protocol::error::OAuthError>((
            apps["clients"].as_array().map_or(0, Vec::len),
            users,
        ))
    };
    let (apps, users) = match counts.await {
        Ok(c) => c,
        Err(e) => return failed(&state, &e),
    };
    render(
        &req,
        &state,
        &signed,
        "console_overview.html",
        "overview",
        context! {
            grants => value(&grants),
            tokens => hour.iter().map(Minute::tokens_total).sum::<u64>(),
            failures => hour.iter().map(|m| m.login_failures).sum::<u64>(),
            reuse => hour.iter().map(|m| m.refresh_reuse).sum::<u64>(),
            requests => hour.iter().map(|m| m.requests).sum::<u64>(),
            p99 => ms(recent::quantile(&all_latency, 0.99)),
            chart_tokens => chart(series(&|m| m.tokens_total() as f64), "tokens"),
            chart_failures => chart(series(&|m| m.login_failures as f64), "failed sign-ins"),
            chart_reuse => chart(series(&|m| m.refresh_reuse as f64), "reuse detections"),
            chart_p99 => chart(series(&p99), "ms (p99)"),
            apps,
            users,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_skip_zeros() {
        let svg = bars(&[0.0, 2.0, 4.0], "tokens");
        assert_eq!(
            svg.matches("<rect").count(),
            3,
            "the axis and two bars: {svg}"
        );
        assert!(
            svg.contains(r#"height="46.0""#),
            "the largest fills the chart: {svg}"
        );
        assert!(svg.contains(r#"height="23.0""#), "{svg}");
        assert!(svg.contains("<title>4 tokens, 0 min ago</title>"), "{svg}");
        assert_eq!(bars(&[0.0; 60], "x").matches("<rect").count(), 1);
        assert_eq!(ms(Some(0.0025)), "≤2.5 ms");
        assert_eq!(ms(Some(f64::INFINITY)), ">10000 ms");
        assert_eq!(ms(None), "no requests");
    }
}
