//! IANA time zones for the maintenance windows (`--window-tz`), from the tz database bundled
//! into the binary by jiff (`tzdb-bundle-always`): the same answer on every machine, with or
//! without the host's /usr/share/zoneinfo.

use fleetboot_core::batch::Zone;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use jiff::{Timestamp, ToSpan};

/// A zone of the bundled database.
#[derive(Clone, Debug)]
pub struct IanaZone(TimeZone);

/// A name the bundled database does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown time zone {name:?}: expected an IANA name like Europe/Berlin, America/New_York or UTC")]
pub struct UnknownZone {
    pub name: String,
    #[source]
    source: jiff::Error,
}

impl IanaZone {
    /// The zone of this IANA name (`UTC` included).
    pub fn named(name: &str) -> Result<IanaZone, UnknownZone> {
        TimeZoneDatabase::bundled().get(name).map(IanaZone).map_err(|source| UnknownZone { name: name.to_owned(), source })
    }

    /// A wall-clock time of an instant, for messages: `2026-12-04 22:00 CET`.
    pub fn show(&self, at_ms: i64) -> String {
        match Timestamp::from_millisecond(at_ms) {
            Ok(ts) => ts.to_zoned(self.0.clone()).strftime("%Y-%m-%d %H:%M %Z").to_string(),
            Err(_) => "never".to_owned(),
        }
    }
}

const EPOCH: Date = jiff::civil::date(1970, 1, 1);

impl Zone for IanaZone {
    fn day_of(&self, at_ms: i64) -> i64 {
        let Ok(ts) = Timestamp::from_millisecond(at_ms) else { return at_ms.div_euclid(86_400_000) };
        let date = ts.to_zoned(self.0.clone()).date();
        i64::from((date - EPOCH).get_days())
    }

    fn instant(&self, day: i64, second: u32) -> i64 {
        let Ok(date) = EPOCH.checked_add(day.days()) else { return day * 86_400_000 };
        let dt: DateTime = date.to_datetime(Time::midnight()) + i64::from(second).seconds();
        let ambiguous = self.0.to_ambiguous_timestamp(dt);
        let ts = match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { offset } | AmbiguousOffset::Fold { before: offset, .. } => offset.to_timestamp(dt).ok(),
            // In a gap: the wall clock jumps over this time; the first instant it shows a later
            // one is the transition itself.
            AmbiguousOffset::Gap { after, .. } => {
                after.to_timestamp(dt).ok().and_then(|early| self.0.following(early).next().map(|t| t.timestamp()))
            }
        };
        ts.map_or(day * 86_400_000, |ts| ts.as_millisecond())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetboot_core::batch::{Window, WindowState, window_state};

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn window(text: &str) -> Vec<Window> {
        vec![text.parse().unwrap()]
    }

    fn length(ws: &[Window], zone: &IanaZone, before: &str) -> (i64, i64) {
        let WindowState::Closed { opens_at_ms } = window_state(ws, zone, ms(before)) else { panic!("closed at {before}") };
        let WindowState::Open { closes_at_ms } = window_state(ws, zone, opens_at_ms) else { panic!("open at {opens_at_ms}") };
        (opens_at_ms, closes_at_ms - opens_at_ms)
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn berlin_spring_forward_and_fall_back() {
        let berlin = IanaZone::named("Europe/Berlin").unwrap();
        // 2026-03-29: 02:00 CET → 03:00 CEST.
        let (opens, len) = length(&window("Sun 01:00-04:00"), &berlin, "2026-03-28T12:00:00Z");
        assert_eq!((opens, len), (ms("2026-03-29T00:00:00Z"), 2 * HOUR));
        // 2026-10-25: 03:00 CEST → 02:00 CET.
        let (opens, len) = length(&window("Sun 01:00-04:00"), &berlin, "2026-10-24T12:00:00Z");
        assert_eq!((opens, len), (ms("2026-10-24T23:00:00Z"), 4 * HOUR));
        // A window starting in the gap opens when the wall clock jumps to 03:00.
        let (opens, len) = length(&window("Sun 02:30-05:00"), &berlin, "2026-03-28T12:00:00Z");
        assert_eq!((opens, len), (ms("2026-03-29T01:00:00Z"), 2 * HOUR));
        // A window crossing midnight on an ordinary night: 22:00 CET is 21:00Z.
        let (opens, len) = length(&window("Mon-Fri 22:00-06:00"), &berlin, "2026-12-04T12:00:00Z");
        assert_eq!((opens, len), (ms("2026-12-04T21:00:00Z"), 8 * HOUR));
        assert_eq!(berlin.show(ms("2026-12-04T21:00:00Z")), "2026-12-04 22:00 CET");
    }

    #[test]
    fn new_york_spring_forward_and_fall_back() {
        let ny = IanaZone::named("America/New_York").unwrap();
        // 2026-03-08: 02:00 EST → 03:00 EDT; a window across the change, crossing midnight.
        let (opens, len) = length(&window("Sat 22:00-06:00"), &ny, "2026-03-07T12:00:00Z");
        assert_eq!((opens, len), (ms("2026-03-08T03:00:00Z"), 7 * HOUR));
        // 2026-11-01: 02:00 EDT → 01:00 EST; 01:30 happens twice: the window opens at the first.
        let (opens, len) = length(&window("Sun 01:30-03:00"), &ny, "2026-10-31T12:00:00Z");
        assert_eq!((opens, len), (ms("2026-11-01T05:30:00Z"), 150 * 60_000));
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        let err = IanaZone::named("Europe/Berln").unwrap_err().to_string();
        assert!(err.contains("\"Europe/Berln\""), "{err}");
        assert!(IanaZone::named("UTC").is_ok());
    }
}
