//! `Prefer`, `Accept` and `Range` headers.

use crate::error::{Error, Result};
use crate::request::{CountPref, MediaType, Preferences, Resolution, ReturnPref, TxPref};

/// Parses `Prefer` (comma separated, over one or more headers joined with commas). Unknown
/// preferences are ignored (`handling=lenient`), or refused with PGRST122 under `handling=strict`.
pub fn parse_prefer(header: Option<&str>) -> Result<Preferences> {
    let mut p = Preferences::default();
    let mut invalid = Vec::new();
    let mut strict = false;
    let mut max_affected = None;
    for token in header.unwrap_or_default().split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let applied = match token {
            "tx=commit" | "tx=rollback" => {
                p.tx = Some(if token == "tx=commit" { TxPref::Commit } else { TxPref::Rollback });
                continue;
            }
            "handling=strict" => {
                strict = true;
                true
            }
            "handling=lenient" => true,
            "return=minimal" => p.return_.replace(ReturnPref::Minimal).is_none(),
            "return=representation" => p.return_.replace(ReturnPref::Representation).is_none(),
            "return=headers-only" => p.return_.replace(ReturnPref::HeadersOnly).is_none(),
            "count=exact" => p.count.replace(CountPref::Exact).is_none(),
            "count=planned" => p.count.replace(CountPref::Planned).is_none(),
            "count=estimated" => p.count.replace(CountPref::Estimated).is_none(),
            "resolution=merge-duplicates" => p.resolution.replace(Resolution::MergeDuplicates).is_none(),
            "resolution=ignore-duplicates" => p.resolution.replace(Resolution::IgnoreDuplicates).is_none(),
            "missing=default" => {
                p.missing_default = true;
                true
            }
            t if t.starts_with("max-affected=") => match t["max-affected=".len()..].parse::<i64>() {
                Ok(n) if n >= 0 => {
                    max_affected = Some(n);
                    continue;
                }
                _ => {
                    invalid.push(token);
                    false
                }
            },
            _ => {
                invalid.push(token);
                false
            }
        };
        if applied && !p.applied.iter().any(|a| a == token) {
            p.applied.push(token.to_string());
        }
    }
    if strict && !invalid.is_empty() {
        return Err(Error::new(400, "PGRST122", "Invalid preferences given with handling=strict")
            .details(format!("Invalid preferences: {}", invalid.join(", "))));
    }
    if let (true, Some(n)) = (strict, max_affected) {
        p.max_affected = Some(n);
        p.applied.push(format!("max-affected={n}"));
    }
    Ok(p)
}

/// Picks the first media type Basalt can produce; 406 PGRST107 when none fits.
pub fn parse_accept(header: Option<&str>) -> Result<MediaType> {
    let Some(h) = header.filter(|h| !h.trim().is_empty()) else { return Ok(MediaType::Json) };
    for item in h.split(',') {
        let mime = item.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/json" | "*/*" | "application/*" | "application/vnd.pgrst.array+json" => return Ok(MediaType::Json),
            "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" => return Ok(MediaType::SingleObject),
            "text/csv" | "text/*" => return Ok(MediaType::Csv),
            _ => {}
        }
    }
    Err(Error::new(406, "PGRST107", format!("None of these media types are available: {h}")))
}

/// Parses `Range: 0-9` (also `items=0-9`) into (offset, inclusive end).
pub fn parse_range_header(h: &str) -> Result<Option<(i64, Option<i64>)>> {
    let spec = h.trim().trim_start_matches("items=");
    let Some((a, b)) = spec.split_once('-') else { return Ok(None) };
    let from = a.trim().parse::<i64>().map_err(|_| Error::bad_range(format!("invalid Range header: {h}")))?;
    let to = match b.trim() {
        "" => None,
        s => Some(s.parse::<i64>().map_err(|_| Error::bad_range(format!("invalid Range header: {h}")))?),
    };
    if to.is_some_and(|t| t < from) {
        return Err(Error::bad_range(format!("invalid Range header: {h}")));
    }
    Ok(Some((from, to)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_tokens() {
        let p = parse_prefer(Some("resolution=merge-duplicates, return=representation,count=exact, tx=commit")).unwrap();
        assert_eq!(p.return_, Some(ReturnPref::Representation));
        assert_eq!(p.resolution, Some(Resolution::MergeDuplicates));
        assert_eq!(p.count, Some(CountPref::Exact));
        assert_eq!(p.applied.len(), 3);
        assert_eq!(p.tx, Some(TxPref::Commit));
        // max-affected counts only under handling=strict.
        let p = parse_prefer(Some("handling=strict, max-affected=5")).unwrap();
        assert_eq!((p.max_affected, p.applied.join(", ").as_str()), (Some(5), "handling=strict, max-affected=5"));
        assert_eq!(parse_prefer(Some("max-affected=5")).unwrap().max_affected, None);
        let e = parse_prefer(Some("handling=strict, max-affected=-1")).unwrap_err();
        assert_eq!(e.details.as_deref(), Some("Invalid preferences: max-affected=-1"));
        let e = parse_prefer(Some("handling=strict, bogus=1")).unwrap_err();
        assert_eq!((e.code.as_str(), e.details.as_deref()), ("PGRST122", Some("Invalid preferences: bogus=1")));
        assert!(parse_prefer(Some("bogus=1")).is_ok());
    }

    #[test]
    fn accept_and_range() {
        assert_eq!(parse_accept(Some("application/vnd.pgrst.object+json")).unwrap(), MediaType::SingleObject);
        assert_eq!(parse_accept(Some("text/csv")).unwrap(), MediaType::Csv);
        assert_eq!(parse_accept(Some("image/png")).unwrap_err().code, "PGRST107");
        assert_eq!(parse_range_header("0-9").unwrap(), Some((0, Some(9))));
        assert_eq!(parse_range_header("10-").unwrap(), Some((10, None)));
    }
}
