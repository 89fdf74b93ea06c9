"""The deny-list: names whose values are redacted, the default of ``COROSCOPE_REDACT``.

Light on purpose (no regular expression is compiled here): the settings import it at
start-up.  The compiled deny-list is :class:`coroscope.values._redact.DenyList`.
"""

from __future__ import annotations

__all__ = ["DEFAULT_DENY", "normalise", "parse_deny_spec", "parse_name_list"]

# The union of Sentry's (sentry_sdk.scrubber.DEFAULT_DENYLIST) and Datadog's (dynamic
# instrumentation REDACTED_IDENTIFIERS) defaults, reduced to the entries that are not
# already covered by a shorter substring entry, plus a few common extras.  Both tools
# compare whole names; matching substrings makes this list strictly broader.
DEFAULT_DENY: tuple[str, ...] = (
    # secrets proper
    "password",
    "passwd",
    "passphrase",
    "passhash",
    "secret",
    "token",
    "apikey",
    "appkey",
    "applicationkey",
    "accesskey",
    "privatekey",
    "privkey",
    "publickey",
    "masterkey",
    "licensekey",
    "encryptionkey",
    "signaturekey",
    "recaptchakey",
    "sessionkey",
    "gpgkey",
    "pgpkey",
    "sshkey",
    "pkcs8",
    "pemfile",
    "certificatepin",
    "auth",
    "credential",
    "cookie",
    "session",
    "sessid",
    "csrf",
    "xsrf",
    "signature",
    "cipher",
    "nonce",
    "salt",
    "totp",
    "connectionstring",
    "connectsid",
    "databaseurl",
    "dburl",
    "mysqlpwd",
    "symfony",
    # personal data
    "creditcard",
    "ccnumber",
    "cardnumber",
    "pincode",
    "routingnumber",
    "securityanswer",
    "securitycode",
    "securityquestion",
    "transactionid",
    "voterid",
    "clientid",
    "ipaddress",
    "remoteaddr",
    "xforwardedfor",
    "xrealip",
    "geolocation",
    # whole words only (three characters or fewer)
    "2fa",
    "cvc",
    "cvv",
    "jti",
    "jwt",
    "mfa",
    "otp",
    "pin",
    "pwd",
    "sid",
    "ssn",
)


def normalise(name: str) -> str:
    """Lower-case ``name`` and drop ``_``, ``-``, ``.`` and spaces: ``X-Api_Key`` -> ``xapikey``."""
    return name.lower().replace("_", "").replace("-", "").replace(".", "").replace(" ", "")


def parse_name_list(raw: str) -> tuple[str, ...]:
    """Parse ``a, b ,c*`` into ``("a", "b", "c*")``; empty entries are ignored."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_deny_spec(raw: str) -> tuple[str, ...]:
    """Parse ``COROSCOPE_REDACT`` into the effective deny-list.

    ``name,name`` extends :data:`DEFAULT_DENY`; ``=name,name`` replaces it (``=`` alone
    turns redaction by name off).  Raises ``ValueError`` for an entry with no letter or
    digit, which would otherwise deny (or match) nothing.
    """
    text = raw.strip()
    replace = text.startswith("=")
    names = parse_name_list(text[1:] if replace else text)
    bad = [name for name in names if not normalise(name)]
    if bad:
        raise ValueError(
            "accepted: comma-separated names (letters, digits, _, -); "
            "a leading '=' replaces the built-in list instead of extending it"
        )
    return names if replace else DEFAULT_DENY + tuple(n for n in names if n not in DEFAULT_DENY)
