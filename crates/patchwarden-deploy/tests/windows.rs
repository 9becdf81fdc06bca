//! Maintenance windows against the calendar: daylight-saving changes in Europe and the US, "second
//! Tuesday + 6 days", blackouts, the expected-duration rule, and `systemd-analyze calendar` as an
//! oracle for the starts of cron schedules (where systemd and we agree by design: everywhere but the
//! start times a clock change skips, which systemd drops and we move past the gap).

use jiff::{SignedDuration, Timestamp};
use patchwarden_deploy::window::{
    BlackoutSpec, MaintenanceWindow, Opening, ScheduleSpec, StartDecision, WindowSpec,
};

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn window(zone: &str, schedule: ScheduleSpec, duration: &str) -> MaintenanceWindow {
    MaintenanceWindow::parse(&WindowSpec {
        name: "test".into(),
        timezone: zone.into(),
        schedule,
        duration: duration.into(),
        blackouts: Vec::new(),
        groups: Vec::new(),
    })
    .unwrap()
}

fn cron(text: &str) -> ScheduleSpec {
    ScheduleSpec::Cron(text.into())
}

fn starts(w: &MaintenanceWindow, after: &str, n: usize) -> Vec<String> {
    w.starts_after(ts(after))
        .take(n)
        .map(|t| t.to_string())
        .collect()
}

#[test]
fn a_start_the_clock_skips_moves_past_the_gap_and_a_repeated_one_happens_once() {
    // Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
    let w = window("Europe/Berlin", cron("30 2 * * sun"), "4h");
    assert_eq!(
        starts(&w, "2026-03-21T00:00:00Z", 3),
        [
            "2026-03-22T01:30:00Z", // 02:30 CET
            "2026-03-29T01:30:00Z", // 02:30 does not exist: 03:30 CEST
            "2026-04-05T00:30:00Z", // 02:30 CEST
        ]
    );
    assert_eq!(
        starts(&w, "2026-10-17T00:00:00Z", 3),
        [
            "2026-10-18T00:30:00Z", // 02:30 CEST
            "2026-10-25T00:30:00Z", // the first 02:30 (CEST), not the second (01:30Z)
            "2026-11-01T01:30:00Z", // 02:30 CET
        ]
    );
    // America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    let ny = window("America/New_York", cron("0 1 * * *"), "3h");
    assert_eq!(
        starts(&ny, "2026-10-30T12:00:00Z", 3),
        [
            "2026-10-31T05:00:00Z", // 01:00 EDT
            "2026-11-01T05:00:00Z", // 01:00 happens twice: the first (EDT)
            "2026-11-02T06:00:00Z", // 01:00 EST
        ]
    );
}

#[test]
fn the_duration_is_elapsed_time_across_a_clock_change() {
    // Saturday 22:00 for 6 hours: the night clocks go forward it closes at 05:00 local, not 04:00.
    let w = window("Europe/Berlin", cron("0 22 * * sat"), "6h");
    let open = w.opening_at(ts("2026-03-29T02:30:00Z")).unwrap();
    assert_eq!(
        open,
        Opening {
            start: ts("2026-03-28T21:00:00Z"),
            end: ts("2026-03-29T03:00:00Z"),
        }
    );
    assert_eq!(
        open.end
            .to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").unwrap())
            .time()
            .hour(),
        5
    );
    assert_eq!(
        w.opening_at(ts("2026-03-29T03:00:00Z")),
        None,
        "closed at its end"
    );
}

#[test]
fn second_tuesday_plus_six_days_is_the_monday_after_patch_tuesday() {
    let w = window(
        "Europe/Berlin",
        ScheduleSpec::NthWeekday {
            nth: 2,
            weekday: "tuesday".into(),
            offset_days: 6,
            at: "22:00".into(),
        },
        "4h",
    );
    // Patch Tuesdays: 2026-11-10, 2026-12-08, 2027-01-12, 2027-02-09, 2027-03-09 (the US changed
    // clocks on 03-14, Europe on 03-28: the March Monday is still CET).
    assert_eq!(
        starts(&w, "2026-11-01T00:00:00Z", 5),
        [
            "2026-11-16T21:00:00Z",
            "2026-12-14T21:00:00Z",
            "2027-01-18T21:00:00Z",
            "2027-02-15T21:00:00Z",
            "2027-03-15T21:00:00Z",
        ]
    );
    for start in w.starts_after(ts("2026-01-01T00:00:00Z")).take(24) {
        let local = start.to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
        assert_eq!(local.weekday(), jiff::civil::Weekday::Monday, "{local}");
        assert!((14..=20).contains(&local.day()), "{local}");
    }
    // The last Friday of the month, one day earlier: a Thursday.
    let last = window(
        "UTC",
        ScheduleSpec::NthWeekday {
            nth: -1,
            weekday: "fri".into(),
            offset_days: -1,
            at: "06:00".into(),
        },
        "1h",
    );
    assert_eq!(
        starts(&last, "2026-12-01T00:00:00Z", 2),
        ["2026-12-24T06:00:00Z", "2027-01-28T06:00:00Z"]
    );
}

#[test]
fn work_starts_only_when_the_time_left_covers_it() {
    let w = window("UTC", cron("0 2 * * *"), "4h");
    let hour = SignedDuration::from_hours(1);
    assert_eq!(
        w.may_start(ts("2026-12-02T02:30:00Z"), hour),
        StartDecision::Start {
            closes: ts("2026-12-02T06:00:00Z")
        }
    );
    match w.may_start(ts("2026-12-02T05:30:00Z"), hour) {
        StartDecision::TooShort { closes, next } => {
            assert_eq!(closes, ts("2026-12-02T06:00:00Z"));
            assert_eq!(next.unwrap().start, ts("2026-12-03T02:00:00Z"));
        }
        other => panic!("{other:?}"),
    }
    match w.may_start(ts("2026-12-02T12:00:00Z"), hour) {
        StartDecision::Closed { next } => {
            assert_eq!(next.unwrap().start, ts("2026-12-03T02:00:00Z"))
        }
        other => panic!("{other:?}"),
    }
    // Work longer than the window never fits.
    assert_eq!(
        w.may_start(ts("2026-12-02T12:00:00Z"), SignedDuration::from_hours(5)),
        StartDecision::Closed { next: None }
    );
}

#[test]
fn blackouts_close_the_window_and_cut_it_short() {
    let mut spec = WindowSpec {
        name: "prod".into(),
        timezone: "Europe/Berlin".into(),
        schedule: cron("0 22 * * *"),
        duration: "6h".into(),
        blackouts: vec![BlackoutSpec {
            from: "2026-12-23T00:00".into(),
            to: "2027-01-02T00:00".into(),
            reason: Some("change freeze".into()),
        }],
        groups: vec!["production".into()],
    };
    let w = MaintenanceWindow::parse(&spec).unwrap();
    // The 22nd's window runs into the freeze at midnight local (23:00Z): two hours, not six.
    let open = w.opening_at(ts("2026-12-22T21:30:00Z")).unwrap();
    assert_eq!(open.end, ts("2026-12-22T23:00:00Z"));
    assert_eq!(
        w.may_start(ts("2026-12-22T21:30:00Z"), SignedDuration::from_hours(2)),
        StartDecision::TooShort {
            closes: ts("2026-12-22T23:00:00Z"),
            next: Some(Opening {
                start: ts("2027-01-01T23:00:00Z"),
                end: ts("2027-01-02T03:00:00Z"),
            }),
        },
        "the freeze ends at midnight of the 2nd: the window of the 1st opens then"
    );
    assert_eq!(w.opening_at(ts("2026-12-28T22:00:00Z")), None, "frozen");
    // A blackout that ends before it begins is named.
    spec.blackouts[0].to = "2026-12-01T00:00".into();
    let err = MaintenanceWindow::parse(&spec).unwrap_err();
    assert_eq!(err.field, "blackouts");
    assert!(err.to_string().contains("prod"), "{err}");
}

#[test]
fn configuration_mistakes_name_the_window_and_field() {
    let toml_text = r#"
name = "db-monthly"
timezone = "Europe/Atlantis"
duration = "4h"
groups = ["database"]
[schedule]
cron = "0 2 * * sun"
"#;
    let spec: WindowSpec = toml::from_str(toml_text).unwrap();
    let err = MaintenanceWindow::parse(&spec).unwrap_err();
    assert_eq!((err.window.as_str(), err.field), ("db-monthly", "timezone"));
    for (schedule, field) in [
        (cron("0 25 * * *"), "schedule.cron"),
        (
            ScheduleSpec::NthWeekday {
                nth: 6,
                weekday: "tue".into(),
                offset_days: 0,
                at: "02:00".into(),
            },
            "schedule.nth_weekday.nth",
        ),
        (
            ScheduleSpec::NthWeekday {
                nth: 2,
                weekday: "tue".into(),
                offset_days: 0,
                at: "25:00".into(),
            },
            "schedule.nth_weekday.at",
        ),
    ] {
        let mut s = spec.clone();
        s.timezone = "UTC".into();
        s.schedule = schedule;
        assert_eq!(MaintenanceWindow::parse(&s).unwrap_err().field, field);
    }
    let mut s = spec.clone();
    s.timezone = "UTC".into();
    s.duration = "forever".into();
    assert_eq!(MaintenanceWindow::parse(&s).unwrap_err().field, "duration");
}

/// `systemd-analyze calendar` lists the next starts of a calendar expression in a time zone; over a
/// year with both clock changes, its starts and ours are the same except where the clock skips the
/// start time (systemd drops that day; we open right after the gap).
#[test]
fn cron_starts_agree_with_systemd_calendar() {
    let available = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        if std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("systemd-analyze is required (PATCHWARDEN_REQUIRE_ORACLES=1)");
        }
        eprintln!("SKIPPED: systemd-analyze not found");
        return;
    }
    let cases = [
        ("30 2 * * sun", "Sun *-*-* 02:30:00", "Europe/Berlin"),
        (
            "0 1 * * mon-fri",
            "Mon..Fri *-*-* 01:00:00",
            "America/New_York",
        ),
        ("15 3 1,15 * *", "*-*-01,15 03:15:00", "Australia/Sydney"),
        ("0 22 * * sat", "Sat *-*-* 22:00:00", "Asia/Kolkata"),
    ];
    let base = "2026-01-01T00:00:00Z";
    for (ours, systemd, zone) in cases {
        let n = 120;
        let out = std::process::Command::new("systemd-analyze")
            .args(["calendar", &format!("--iterations={n}")])
            .arg("--base-time=2026-01-01 00:00:00 UTC")
            .arg(format!("{systemd} {zone}"))
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let theirs: Vec<Timestamp> = text
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once(": ")?;
                let rest = rest.trim();
                // "Sun 2026-04-05 00:30:00 UTC"
                let mut parts = rest.split_whitespace();
                let (_, day, time) = (parts.next()?, parts.next()?, parts.next()?);
                (parts.next() == Some("UTC")).then(|| ts(&format!("{day}T{time}Z")))
            })
            .collect();
        assert_eq!(theirs.len(), n, "{text}");
        let w = window(zone, cron(ours), "1h");
        let mine: Vec<Timestamp> = w
            .starts_after(ts(base))
            .take_while(|t| t <= theirs.last().unwrap())
            .collect();
        let zone_tz = jiff::tz::TimeZone::get(zone).unwrap();
        let only_mine: Vec<&Timestamp> = mine.iter().filter(|t| !theirs.contains(t)).collect();
        assert!(
            theirs.iter().all(|t| mine.contains(t)),
            "{ours} in {zone}: systemd has starts we lack"
        );
        for t in &only_mine {
            // Ours alone: a start moved past a skipped hour — its local time is not the asked one.
            let local = t.to_zoned(zone_tz.clone());
            let asked = systemd.split_whitespace().last().unwrap();
            assert_ne!(
                local.time().to_string()[..8],
                asked[..8],
                "{ours} in {zone}: {local}"
            );
            // ... and the clock changed that day.
            let day_before = t.checked_sub(SignedDuration::from_hours(24)).unwrap();
            assert_ne!(
                zone_tz.to_offset(**t),
                zone_tz.to_offset(day_before),
                "{ours} in {zone}: {local}"
            );
        }
        if zone == "Europe/Berlin" {
            assert!(!only_mine.is_empty(), "the case covers a skipped start");
        }
    }
}
