//! Bar charts drawn on the server as inline SVG: no script, nothing to load.

use crate::domain::UnixMs;

pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub bars: Vec<Bar>,
    pub max: i64,
    pub total: i64,
    pub first_label: String,
    pub last_label: String,
}

/// `counts` are (bucket index, count) for `buckets` buckets of `bucket_ms` from `since`.
pub fn bars(
    counts: &[(i64, i64)],
    buckets: usize,
    since: UnixMs,
    bucket_ms: i64,
    label: fn(UnixMs) -> String,
) -> Chart {
    let mut values = vec![0i64; buckets];
    for &(b, n) in counts {
        if let Some(v) = usize::try_from(b).ok().and_then(|b| values.get_mut(b)) {
            *v += n;
        }
    }
    let max = values.iter().copied().max().unwrap_or(0);
    let slot = WIDTH / buckets.max(1) as u32;
    let bars = values
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let height =
                if max == 0 { 0 } else { ((n as f64 / max as f64) * f64::from(HEIGHT - 4)).round() as u32 };
            let height = if n > 0 { height.max(1) } else { 0 };
            Bar {
                x: i as u32 * slot,
                y: HEIGHT - height,
                width: slot.saturating_sub(2).max(1),
                height,
                title: format!("{}: {n} failures", label(since + i as i64 * bucket_ms)),
            }
        })
        .collect();
    Chart {
        bars,
        max,
        total: values.iter().sum(),
        first_label: label(since),
        last_label: label(since + (buckets as i64 - 1) * bucket_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_bucket() {
        let c = bars(&[(0, 5), (3, 10), (9, 99)], 4, 0, 1000, |t| t.to_string());
        assert_eq!(c.max, 10);
        assert_eq!(c.total, 15, "a bucket past the range is ignored");
        assert_eq!(c.bars[3].height, HEIGHT - 4);
        assert_eq!(c.bars[1].height, 0);
        assert!(c.bars[0].height > 0 && c.bars[0].height < c.bars[3].height);
        assert_eq!(c.bars[3].title, "3000: 10 failures");
    }
}
