//! The IMAP reads one session makes: metadata, whole bodies, body sections, the check that a
//! mail is still there, and the unsolicited responses drained between them. Does not decide
//! what a failure means for the cursor (that is the channel, `super`).

use super::*;

/// Empties the session's queue of unsolicited responses; true if it announced new mail.
pub(super) fn drain(s: &Session<Conn>) -> bool {
    let mut new_mail = false;
    while let Ok(r) = s.unsolicited_responses.try_recv() {
        if matches!(
            r,
            UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
        ) {
            new_mail = true;
        }
    }
    new_mail
}

/// UID, size and INTERNALDATE of every message from UID `from` on, in UID order.
pub(super) async fn fetch_meta(
    s: &mut Session<Conn>,
    from: u32,
) -> Result<Vec<Meta>, async_imap::error::Error> {
    let st = s
        .uid_fetch(format!("{from}:*"), "(UID RFC822.SIZE INTERNALDATE)")
        .await?;
    let fetches: Vec<Fetch> = st.try_collect().await?;
    let mut out: Vec<Meta> = fetches
        .iter()
        // `n:*` names the last message even when its UID is below n; unsolicited FETCHes
        // (flag changes) carry no size.
        .filter(|f| f.size.is_some())
        .filter_map(|f| {
            Some(Meta {
                uid: f.uid?,
                size: u64::from(f.size?),
                arrival: f
                    .internal_date()
                    .and_then(|d| Timestamp::from_second(d.timestamp()).ok()),
            })
        })
        .filter(|m| m.uid >= from)
        .collect();
    out.sort_by_key(|m| m.uid);
    out.dedup_by_key(|m| m.uid);
    Ok(out)
}

/// The whole message as the server stores it, without setting `\Seen`.
pub(super) async fn fetch_body(s: &mut Session<Conn>, uid: u32) -> Result<Body, ImapError> {
    fetch_section(s, uid, "BODY.PEEK[]", None).await
}

/// `UID FETCH uid (UID item)` for a `BODY.PEEK[]` item (`index`: the partial's offset).
pub(super) async fn fetch_section(
    s: &mut Session<Conn>,
    uid: u32,
    item: &str,
    index: Option<u32>,
) -> Result<Body, ImapError> {
    let mut body = None;
    command(s, &format!("UID FETCH {uid} (UID {item})"), |r| {
        if body.is_none() {
            body = body_of(r, uid, index).map(<[u8]>::to_vec);
        }
    })
    .await?;
    match body {
        Some(b) => Ok(Body::Bytes(b)),
        None => still_there(s, uid).await,
    }
}

/// The answer to a body FETCH of `uid`: a FETCH response with this UID *and* the `BODY[]`
/// section asked for (`BODY[]<index>` for a partial). A FETCH with the UID but only FLAGS is
/// another session's flag change, not the answer.
pub(super) fn body_of<'a>(r: &'a Response<'a>, uid: u32, index: Option<u32>) -> Option<&'a [u8]> {
    let Response::Fetch(_, attrs) = r else {
        return None;
    };
    if !attrs
        .iter()
        .any(|a| matches!(a, AttributeValue::Uid(u) if *u == uid))
    {
        return None;
    }
    attrs.iter().find_map(|a| match a {
        AttributeValue::BodySection {
            section: None,
            index: i,
            data,
        } if *i == index => match data {
            Some(d) => Some(d.as_ref()),
            // NIL for a piece past the end (Dovecot sends `{0}`): nothing more to read.
            None if index.is_some() => Some(&[][..]),
            None => None,
        },
        AttributeValue::Rfc822(Some(d)) if index.is_none() => Some(d.as_ref()),
        _ => None,
    })
}

/// No body came for `uid`: `Gone` if the folder no longer has it, else an error (the server
/// has the mail but did not send it — never to be mistaken for an expunge).
pub(super) async fn still_there(s: &mut Session<Conn>, uid: u32) -> Result<Body, ImapError> {
    let mut found = false;
    command(s, &format!("UID SEARCH UID {uid}"), |r| {
        found |=
            matches!(r, Response::MailboxData(MailboxDatum::Search(ids)) if ids.contains(&uid));
    })
    .await?;
    if found {
        Err(ImapError::NoBody)
    } else {
        Ok(Body::Gone)
    }
}

/// Runs `command`, showing each untagged response to `each`, until its tagged status: OK is
/// `Ok`, a tagged NO or BAD an error. async-imap's `uid_fetch` and `uid_search` end quietly on NO/BAD, as
/// if the answer were "no such mail" — which would pass a mail the server refused as expunged.
/// Unsolicited responses among them are dropped: after mails were read the folder is scanned
/// again anyway.
pub(super) async fn command(
    s: &mut Session<Conn>,
    command: &str,
    mut each: impl FnMut(&Response<'_>),
) -> Result<(), ImapError> {
    let tag = s.run_command(command).await?;
    loop {
        let resp = s
            .read_response()
            .await
            .map_err(ImapError::from_io)?
            .ok_or(ImapError::ConnectionLost)?;
        if let Response::Done {
            tag: t,
            status,
            outcome,
        } = resp.parsed()
            && *t == tag
        {
            let info = || {
                outcome
                    .information
                    .as_deref()
                    .unwrap_or_default()
                    .to_string()
            };
            return match status {
                Status::Ok => Ok(()),
                Status::No => Err(ImapError::No(info())),
                Status::Bad => Err(ImapError::Bad(info())),
                other => Err(ImapError::Other(format!("unexpected {other:?}"))),
            };
        }
        each(resp.parsed());
    }
}
