//! Safe reading of the SIP message being processed, through the core's own parsers.

use crate::kstr;
use kamailio_sys as k;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ptr::NonNull;
use warp_core::number::{param, phone_context};
use warp_core::Number;

/// Where an ANI was found (precedence order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AniSource {
    Pai,
    Rpid,
    From,
}

impl AniSource {
    pub fn name(self) -> &'static str {
        match self {
            AniSource::Pai => "pai",
            AniSource::Rpid => "rpid",
            AniSource::From => "from",
        }
    }
}

/// The message a script function was called for; valid for the duration of the call.
pub struct SipMsg(NonNull<k::sip_msg>);

impl SipMsg {
    /// # Safety
    /// `msg` must be the message the core passed to the current entry point (or null).
    pub unsafe fn new(msg: *mut k::sip_msg) -> Option<Self> {
        NonNull::new(msg).map(SipMsg)
    }

    pub fn raw(&self) -> *mut k::sip_msg {
        self.0.as_ptr()
    }

    fn get(&self) -> &k::sip_msg {
        // SAFETY: see `new`.
        unsafe { self.0.as_ref() }
    }

    /// (message id, pid): identifies the message within Kamailio's life time.
    pub fn identity(&self) -> (u32, i32) {
        (self.get().id, self.get().pid)
    }

    pub fn is_request(&self) -> bool {
        i32::from(self.get().first_line.type_) == k::SIP_REQUEST as i32
    }

    pub fn is_invite(&self) -> bool {
        // SAFETY: a request's first line holds the request variant.
        self.is_request()
            && unsafe { self.get().first_line.u.request.method_value } == k::METHOD_INVITE as i32
    }

    /// The address the message arrived from (`$si`).
    pub fn source_ip(&self) -> Option<IpAddr> {
        let ip = &self.get().rcv.src_ip;
        // SAFETY: `addr` covers every representation of the union.
        let bytes = unsafe { ip.u.addr };
        match ip.af {
            k::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
                bytes[0], bytes[1], bytes[2], bytes[3],
            ))),
            k::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(bytes))),
            _ => None,
        }
    }

    /// The Call-ID (`$ci`).
    pub fn call_id(&self) -> Option<Cow<'_, str>> {
        // SAFETY: the parser caches the header in the message it was given.
        unsafe {
            if k::parse_headers(self.raw(), 1 << k::HDR_CALLID_T, 0) < 0 {
                return None;
            }
            let hdr = self.get().callid.as_ref()?;
            non_empty(kstr::as_str(&hdr.body)).and_then(|id| match id {
                Cow::Borrowed(b) => non_empty(Cow::Borrowed(b.trim())),
                Cow::Owned(o) => non_empty(Cow::Owned(o.trim().to_owned())),
            })
        }
    }

    /// The integer value of pseudo-variable `name` (e.g. `$T_reply_code`) for this
    /// message.
    pub fn pv_int(&self, name: &str) -> Option<i32> {
        let mut spec_name = kstr::from_bytes(name.as_bytes());
        let mut value = k::pv_value_t::default();
        // SAFETY: the core parses `name` once and caches the spec; the value it returns
        // for an integer needs no freeing.
        unsafe {
            let spec = k::pv_cache_get(&mut spec_name);
            if spec.is_null() || k::pv_get_spec_value(self.raw(), spec, &mut value) != 0 {
                return None;
            }
        }
        (value.flags & k::PV_VAL_INT as i32 != 0).then_some(value.ri)
    }

    /// The digest username of the credentials Kamailio's auth module looked at on this
    /// request, from Proxy-Authorization or Authorization; `None` before any
    /// `auth_check()`/`proxy_authorize()`/`pv_*_authenticate()`. The module marks them
    /// before it checks the password: they are the right ones only if the check said
    /// so (see [`crate::identify`]). The whole username, as it was hashed into ha1: the
    /// core's `user` part (`$au`) drops what follows an `@` or precedes a `:`.
    pub fn credentials_user(&self) -> Option<Cow<'_, str>> {
        [self.get().proxy_auth, self.get().authorization]
            .into_iter()
            .find_map(|hdr| {
                let mut authorized = std::ptr::null_mut();
                // SAFETY: reads the `authorized` mark auth set on the parsed credentials.
                unsafe {
                    k::get_authorized_cred(hdr, &mut authorized);
                    let body = authorized.as_ref()?.parsed as *const k::auth_body_t;
                    non_empty(kstr::as_str(&body.as_ref()?.digest.username.whole))
                }
            })
    }

    /// The digest credentials the request offers, before anything checked them: those
    /// of each Proxy-Authorization header in order, else of each Authorization header,
    /// as (whole username, realm), handed to `take` until it takes one. A request may
    /// carry credentials for several realms; those the core's digest parser refuses
    /// are passed over.
    pub fn offered_credentials<T>(
        &self,
        mut take: impl FnMut(&str, &str) -> Option<T>,
    ) -> Option<T> {
        // SAFETY: the parser caches the headers, and their parsed credentials, in the
        // message it was given; they live as long as the message.
        unsafe {
            // Every header (HDR_EOH_F): the credentials after the first too.
            if k::parse_headers(self.raw(), !0, 0) < 0 {
                return None;
            }
            let first = [self.get().proxy_auth, self.get().authorization]
                .into_iter()
                .find(|h| !h.is_null())?;
            let kind = (*first).type_;
            let mut hdr = first;
            while !hdr.is_null() {
                if (*hdr).type_ == kind && k::parse_credentials(hdr) == 0 {
                    if let Some(body) = (*hdr).parsed.cast::<k::auth_body_t>().as_ref() {
                        let realm = kstr::as_str(&body.digest.realm);
                        let found = non_empty(kstr::as_str(&body.digest.username.whole))
                            .and_then(|user| take(&user, &realm));
                        if found.is_some() {
                            return found;
                        }
                    }
                }
                hdr = (*hdr).next;
            }
            None
        }
    }

    /// User part of the Request-URI (`$rU`): the dialled number. Read as
    /// `parse_sip_msg_uri()` would (the rewritten URI if any, else the request line's)
    /// but without filling the message's parse cache: the common shape costs no core
    /// parse, and routing rewrites the URI right after, which voids that cache anyway.
    pub fn ruri_user(&self) -> Option<Cow<'_, str>> {
        self.request_user(true)
    }

    /// [`ruri_user`](Self::ruri_user) as the caller dialled it: a local number not read
    /// in its phone-context (an emergency number is one in any: `sip:911;phone-context=+1@
    /// edge;user=phone` is `911`, not `+1911`).
    pub fn ruri_user_as_dialled(&self) -> Option<Cow<'_, str>> {
        self.request_user(false)
    }

    /// The R-URI's user part, a local number read in its phone-context if `in_context`.
    fn request_user(&self, in_context: bool) -> Option<Cow<'_, str>> {
        if !self.is_request() {
            return None;
        }
        let msg = self.get();
        // SAFETY: a request's first line is the request variant; both URIs point into
        // buffers that outlive this call, and a cached parse describes the current one.
        unsafe {
            if msg.parsed_uri_ok != 0 {
                return parsed_uri_user(&msg.parsed_uri, in_context);
            }
            let uri = if msg.new_uri.s.is_null() {
                &msg.first_line.u.request.uri
            } else {
                &msg.new_uri
            };
            user_of(uri, in_context)
        }
    }

    /// Points the request at `uri` (`$ru`).
    pub fn set_ruri(&self, uri: &str) -> Result<(), String> {
        // SAFETY: the core copies the URI into the message's new_uri.
        if unsafe { k::rewrite_uri(self.raw(), &mut kstr::from_bytes(uri.as_bytes())) } < 0 {
            return Err(format!("cannot set the R-URI to {uri}"));
        }
        Ok(())
    }

    /// The calling number: user part of P-Asserted-Identity, else Remote-Party-ID,
    /// else From (WARP's routing semantics, rule 5 of the zones), the first of them
    /// that is a telephone number. An identity without one (`sip:anonymous@…`) does
    /// not hide a number after it: else a PAI naming no number would carry a From on
    /// the Do-Not-Originate list past the check. With no number anywhere, the first
    /// user part found stands.
    pub fn ani(&self) -> Option<(AniSource, Cow<'_, str>)> {
        let (pai, rpid) = self.identity_headers();
        let mut named = None;
        if pai {
            if let Some((user, number)) = self.user_in_pai() {
                if number {
                    return Some((AniSource::Pai, user));
                }
                named = Some((AniSource::Pai, user));
            }
        }
        if rpid {
            if let Some(user) = self.user_in_rpid() {
                if Number::parse(&user).is_ok() {
                    return Some((AniSource::Rpid, user));
                }
                named.get_or_insert((AniSource::Rpid, user));
            }
        }
        let from = self.user_in_from().map(|u| (AniSource::From, u));
        match named {
            // From is parsed as a number only when an identity before it named none.
            Some(named) => from
                .filter(|(_, u)| Number::parse(u).is_ok())
                .or(Some(named)),
            None => from,
        }
    }

    /// Whether the message has P-Asserted-Identity and Remote-Party-ID headers, from the
    /// core's parse of every header: the reply or the transaction parses them all anyway
    /// (a stateless reply and tm's new transaction both ask for the end of the headers),
    /// so this only does it sooner. A header the parser cannot read ends what it sees.
    fn identity_headers(&self) -> (bool, bool) {
        // SAFETY: the parser caches every header it reads in the message.
        unsafe { k::parse_headers(self.raw(), 1 << k::HDR_EOH_T, 0) };
        let msg = self.get();
        (!msg.pai.is_null(), !msg.rpid.is_null())
    }

    /// The first identity across all P-Asserted-Identity headers whose user part is a
    /// telephone number (RFC 3325 allows a sip and a tel identity: `<sip:alice@…>,
    /// <tel:+1…>`), else the first with any user part; with whether it is a number.
    fn user_in_pai(&self) -> Option<(Cow<'_, str>, bool)> {
        // SAFETY: the core attaches the parsed bodies to `msg->pai`, in a chain, as it
        // parses them; a header it cannot parse ends the chain (and the parse fails)
        // but leaves the ones before it, which a second parse would return as a
        // success: so they count either way, and every caller sees the same ANI.
        unsafe {
            let pai = self.get().pai;
            if pai.is_null() {
                return None;
            }
            k::parse_pai_header(self.raw());
            let mut first = None;
            let mut body = (*pai).parsed as *const k::p_id_body_t;
            while let Some(b) = body.as_ref() {
                let ids = std::slice::from_raw_parts(b.id, b.num_ids.max(0) as usize);
                for user in ids.iter().filter_map(|id| uri_user(&id.uri)) {
                    if Number::parse(&user).is_ok() {
                        return Some((user, true));
                    }
                    first.get_or_insert(user);
                }
                body = b.next;
            }
            first.map(|user| (user, false))
        }
    }

    /// The first Remote-Party-ID that names a user and not the called party
    /// (`party=called`), across every RPID header and every party a header lists
    /// (`<sip:…>;party=calling, <sip:…>;party=called`). Read here rather than by the
    /// core's parser, which reads only the first header and fails on such a list.
    fn user_in_rpid(&self) -> Option<Cow<'_, str>> {
        // SAFETY: the core parsed every header into the message (`identity_headers`);
        // each header's body points into the message buffer.
        unsafe {
            let mut hdr = self.get().rpid as *const k::hdr_field;
            while let Some(h) = hdr.as_ref() {
                if h.type_ == k::HDR_RPID_T {
                    let user = header_values(kstr::as_bytes(&h.body))
                        .filter_map(addr_parts)
                        .filter(|(_, params)| !params_name_called(params))
                        .find_map(|(uri, _)| uri_user(&kstr::from_bytes(uri)));
                    if user.is_some() {
                        return user;
                    }
                }
                hdr = h.next;
            }
            None
        }
    }

    /// The From URI's user part. When nothing has parsed the From body yet, its URI is
    /// cut out here and parsed on the stack: the core's From parser allocates the body
    /// and each of its parameters, which costs more than the rest of this lookup under
    /// Kamailio's default allocator (a stateless redirect server may never need them).
    fn user_in_from(&self) -> Option<Cow<'_, str>> {
        // SAFETY: the core parser caches the header (and any parsed body) in the message;
        // the URI points into the message buffer.
        unsafe {
            if k::parse_headers(self.raw(), 1 << k::HDR_FROM_T, 0) < 0 {
                return None;
            }
            let hdr = self.get().from.as_ref()?;
            if let Some(parsed) = (hdr.parsed as *const k::to_body_t).as_ref() {
                return uri_user(&parsed.uri);
            }
            let uri = addr_uri(kstr::as_bytes(&hdr.body))?;
            uri_user(&kstr::from_bytes(uri))
        }
    }
}

/// The URI of a From/To header value: inside `<...>` (after any quoted display name),
/// else the whole addr-spec before the header's parameters.
fn addr_uri(value: &[u8]) -> Option<&[u8]> {
    addr_parts(value).map(|(uri, _)| uri)
}

/// The comma-separated values of a header (RFC 3261 7.3.1), leaving commas inside a
/// quoted display name or a `<...>` URI alone.
fn header_values(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (mut quoted, mut escaped, mut bracketed) = (false, false, false);
    body.split(move |&b| {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' if !bracketed => quoted = !quoted,
            b'<' if !quoted => bracketed = true,
            b'>' if !quoted => bracketed = false,
            b',' => return !quoted && !bracketed,
            _ => {}
        }
        false
    })
}

/// The URI of a name-addr or addr-spec header value and the header's parameters after
/// it (from their first `;`, empty when none).
fn addr_parts(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in value.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => {
                let rest = &value[i + 1..];
                let end = rest.iter().position(|&b| b == b'>')?;
                return Some((&rest[..end], &rest[end + 1..]));
            }
            _ => {}
        }
    }
    let spec = value.trim_ascii();
    let end = spec.iter().position(|&b| b == b';').unwrap_or(spec.len());
    Some((spec[..end].trim_ascii(), &spec[end..]))
}

/// Whether `;`-separated header parameters hold `party=called`.
fn params_name_called(params: &[u8]) -> bool {
    param(params, b"party").is_some_and(|v| v.eq_ignore_ascii_case(b"called"))
}

/// User part of a SIP/tel URI, if it has one.
///
/// # Safety
/// `uri` must point into the message buffer, which the result borrows.
unsafe fn uri_user<'a>(uri: &k::str_) -> Option<Cow<'a, str>> {
    user_of(uri, true)
}

/// [`uri_user`], a local number read in its phone-context if `in_context`.
///
/// # Safety
/// As [`uri_user`].
unsafe fn user_of<'a>(uri: &k::str_, in_context: bool) -> Option<Cow<'a, str>> {
    if let Some(user) = plain_sip_user(kstr::as_bytes(uri)) {
        // SAFETY: `plain_sip_user` takes only digits, `+`, `-` and `.`: ASCII is UTF-8.
        return Some(Cow::Borrowed(std::str::from_utf8_unchecked(user)));
    }
    let mut parsed = k::sip_uri::default();
    if k::parse_uri(uri.s, uri.len, &mut parsed) < 0 {
        return None;
    }
    parsed_uri_user(&parsed, in_context)
}

/// User part of a URI the core parsed, read in its phone-context when it is a local
/// number and `in_context`.
///
/// # Safety
/// `parsed` must point into a buffer that outlives the result.
unsafe fn parsed_uri_user<'a>(parsed: &k::sip_uri, in_context: bool) -> Option<Cow<'a, str>> {
    let user = kstr::as_str(&parsed.user);
    // A local number (tel:, or sip: with user=phone) is a number in its phone-context
    // (RFC 3966 5.1.5): `tel:2079460000;phone-context=+44` is +44 20 7946 0000, not a
    // NANP number. A domain context names no digits: the number stays as written.
    let local = matches!(parsed.type_, k::TEL_URI_T | k::TELS_URI_T) && !user.starts_with('+');
    if local && in_context {
        if let Some(context) = phone_context(kstr::as_bytes(&parsed.params)) {
            return Some(Cow::Owned(format!("{context}{user}")));
        }
    }
    non_empty(user)
}

/// The user part of the common `sip:+13035550100@host:port;params` shape, read without
/// the core's URI parser (which costs about a thousand instructions a call): only when
/// the user is plain number characters (no password, parameters or escapes) and the
/// host a plain name or IPv4 address, so that the core's parse would give the same.
/// Anything else is left to the core.
fn plain_sip_user(uri: &[u8]) -> Option<&[u8]> {
    let rest = uri
        .get(..4)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"sip:"))
        .map(|_| &uri[4..])?;
    // One pass: the user up to '@', the host name, an optional port, then `;` or the end.
    let at = rest
        .iter()
        .position(|b| !matches!(b, b'0'..=b'9' | b'+' | b'-' | b'.'))
        .filter(|&at| at > 0 && rest[at] == b'@')?;
    let host = &rest[at + 1..];
    let name = host
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')))
        .unwrap_or(host.len());
    let after = match host[name..].split_first() {
        Some((b':', port)) => {
            let digits = port.iter().take_while(|b| b.is_ascii_digit()).count();
            (digits > 0).then(|| &port[digits..])?
        }
        _ => &host[name..],
    };
    (name > 0 && after.first().is_none_or(|&b| b == b';')).then_some(&rest[..at])
}

fn non_empty(s: Cow<'_, str>) -> Option<Cow<'_, str>> {
    (!s.is_empty()).then_some(s)
}
