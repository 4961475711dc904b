//! Connection URLs (PostgreSQL, Redis) reach logs and startup banners; their
//! passwords must not. One masker serves every WARP binary so they all hide the
//! same things.

/// `redis://user:secret@host` → `redis://user:***@host`.
///
/// The last `@` ends the userinfo, as a password may hold one. A lone userinfo
/// (`redis://secret@host`) may well be the password and is masked whole. A URL
/// too malformed to tell its user (`redis:secret@host`, `redis:/:secret@host`)
/// keeps only its host, `***@host`: such a URL is usually logged because it is
/// being refused.
pub fn mask_password(url: &str) -> String {
    let Some((before, host)) = url.rsplit_once('@') else {
        return url.to_owned();
    };
    let Some((scheme, userinfo)) = before.split_once("://") else {
        return format!("***@{host}");
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn masks_the_password_of_any_url_with_userinfo() {
        for (url, shown) in [
            ("redis://u:pw@h:6379/0", "redis://u:***@h:6379/0"),
            (
                "postgres://warp:pw@db:5432/warp",
                "postgres://warp:***@db:5432/warp",
            ),
            ("redis://:p@ss@h", "redis://:***@h"),
            ("redis://u:p@ss@h:6379", "redis://u:***@h:6379"),
            ("redis://pw@h", "redis://***@h"),
            ("redis://h:6379", "redis://h:6379"),
            ("redis:/:pw@h", "***@h"),
            ("redis:pw@h", "***@h"),
            ("u:pw@h", "***@h"),
            (":pw@h", "***@h"),
        ] {
            assert_eq!(mask_password(url), shown, "{url}");
        }
    }
}
