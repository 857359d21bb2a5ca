"""`mikolic-server`: set up, run and administer the reference licensing server, one directory per server."""
from __future__ import annotations

import argparse
import logging
import ssl
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from mikolicd import offlinecode, regnum
from mikolicd.config import duration
from mikolicd.protocol import PBX_FEATURE, PBX_PRODUCT
from mikolicd.refserver.db import Database, Owner
from mikolicd.refserver.drift import REBIND_INTERVAL
from mikolicd.refserver.licensing import TRIAL_DAYS, AdminError, Licensing, ProtocolError
from mikolicd.refserver.offline import OfflineError, read_receipt, read_request
from mikolicd.refserver.ratelimit import Limits
from mikolicd.refserver.schema import SchemaError
from mikolicd.refserver.signing import Signer, ensure_key

ISSUED_DAYS = 365
DOCUMENT_TTL = "14d"
OFFLINE_TTL = "365d"


class CliError(Exception):
    """Stops the command with a message for the admin and exit status 1."""


@dataclass(frozen=True)
class ServerDir:
    path: Path

    @property
    def key(self) -> Path:
        return self.path / "signing-key.pem"

    @property
    def trusted_keys(self) -> Path:
        return self.path / "trusted_keys.pem"

    @property
    def db(self) -> Path:
        return self.path / "licenses.db"


def init(directory: Path) -> Signer:
    """Create the directory's key pair and database; running it again keeps both."""
    sd = ServerDir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    signer = ensure_key(sd.key, sd.trusted_keys)
    Database(sd.db, create=True).close()
    return signer


def open_licensing(directory: Path, document_ttl: int = int(duration(DOCUMENT_TTL)),
                   rebind_interval: int = REBIND_INTERVAL) -> Licensing:
    sd = ServerDir(directory)
    try:
        signer = Signer.load(sd.key)
        return Licensing(Database(sd.db), signer, document_ttl, rebind_interval=rebind_interval)
    except FileNotFoundError:
        raise CliError(f"{directory} is not an initialised server directory (run: mikolic-server init --dir "
                       f"{directory})") from None
    except SchemaError as exc:
        raise CliError(f"{sd.db}: {exc}") from None


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:8443")
    return host.strip("[]"), int(port)


def _ttl(text: str) -> int:
    try:
        seconds = int(duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {exc}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a duration above zero")
    return seconds


def _number(text: str, low: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not low <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected {what}")
    return value


def _rate(text: str) -> float:
    return _number(text, 0, "a number of at least 0 (0 switches the limit off)")


def _burst(text: str) -> float:
    return _number(text, 1, "a number of at least 1")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return int(text)


def _tls(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from None
    return context


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mikolic-server", description="Miko reference licensing server")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, required=True, help="the server directory (key, database)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", parents=[common], help="create the signing key and the database")
    srv = sub.add_parser("serve", parents=[common], help="answer the licensing protocol over HTTP(S)")
    srv.add_argument("--listen", type=_listen, required=True, metavar="HOST:PORT")
    srv.add_argument("--tls-cert", type=Path)
    srv.add_argument("--tls-key", type=Path)
    srv.add_argument("--document-ttl", type=_ttl, default=_ttl(DOCUMENT_TTL), metavar="DURATION",
                     help="how long agents may use a document offline (30s, 15m, 6h, 14d or seconds)")
    srv.add_argument("--rebind-interval", type=_ttl, default=REBIND_INTERVAL, metavar="DURATION",
                     help="record a changed part of a seat's host at most this often (default 30d)")
    defaults = Limits()
    for flag, kind, what in (("--max-rps", _rate, "requests a second for the whole server"),
                             ("--address-rps", _rate, "requests a second per client address"),
                             ("--address-burst", _burst, "requests at once per client address"),
                             ("--guesses-per-minute", _rate, "unknown numbers or coupons a minute per address"),
                             ("--guess-burst", _burst, "unknown numbers or coupons at once per address"),
                             ("--number-rps", _rate, "requests a second per registration number"),
                             ("--number-burst", _burst, "requests at once per registration number")):
        switch = ", 0: no limit" if kind is _rate else ""
        srv.add_argument(flag, type=kind, default=getattr(defaults, flag[2:].replace("-", "_")), metavar="N",
                         help=f"{what}; above it 429 with Retry-After (default %(default)g{switch})")
    off = sub.add_parser("offline", help="answer an offline request, or accept a release receipt")
    off.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    offsub = off.add_subparsers(dest="offline", required=True)
    answer = offsub.add_parser("answer", help="print the signed document for an offline request")
    answer.add_argument("--offline-ttl", type=_ttl, default=_ttl(OFFLINE_TTL), metavar="DURATION",
                        help=f"how long the document may be used without any server (default {OFFLINE_TTL})")
    answer.add_argument("--code", action="store_true", help="print it as a copy-paste code")
    release = offsub.add_parser("release", help="free the seat named by an offline release receipt")
    for leaf in (answer, release):
        leaf.add_argument("--dir", type=Path, default=argparse.SUPPRESS, help="the server directory")
        leaf.add_argument("file", metavar="FILE", help="the request or receipt: its JWS or code; - reads stdin")
    iss = sub.add_parser("issue", parents=[common], help="create a registration number and print it")
    iss.add_argument("--product", type=int, default=PBX_PRODUCT)
    iss.add_argument("--feature", type=int,
                     help=f"the seat feature (default: {PBX_FEATURE} for product {PBX_PRODUCT})")
    iss.add_argument("--seats", type=_positive, default=1)
    term = iss.add_mutually_exclusive_group()
    term.add_argument("--days", type=int, help=f"days until the product ends (default {ISSUED_DAYS}, "
                                               f"{TRIAL_DAYS} with --trial; negative: already ended)")
    term.add_argument("--termless", action="store_true")
    iss.add_argument("--trial", action="store_true")
    for name in ("company", "contact", "email", "tel"):
        iss.add_argument(f"--{name}", default="")
    cpn = sub.add_parser("coupon", parents=[common], help="create a coupon and print it")
    cpn.add_argument("--product", type=int, default=PBX_PRODUCT)
    cterm = cpn.add_mutually_exclusive_group()
    cterm.add_argument("--days", type=_positive, help="extend the product by this many days")
    cterm.add_argument("--termless", action="store_true", help="make the product termless (the default)")
    for name, what in (("block", "block a coupon"), ("reset", "drop every host binding of a number"),
                       ("revoke", "refuse a number from now on")):
        cmd = sub.add_parser(name, parents=[common], help=what)
        cmd.add_argument("value", metavar="COUPON" if name == "block" else "NUMBER")
    return parser


def _issue_days(args: argparse.Namespace) -> int | None:
    if args.termless:
        return None
    if args.days is not None:
        return args.days
    return TRIAL_DAYS if args.trial else ISSUED_DAYS


def _read(name: str) -> str:
    try:
        return sys.stdin.read() if name == "-" else Path(name).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise CliError(f"cannot read {name}: {exc.strerror or exc}") from None


def _refused(exc: ProtocolError) -> CliError:
    prefix = f"({exc.code})"
    return CliError(exc.message if exc.message.startswith(prefix) else f"{prefix} {exc.message}")


def _offline(args: argparse.Namespace) -> str:
    licensing = open_licensing(args.dir)
    try:
        if args.offline == "answer":
            document = licensing.offline_answer(read_request(_read(args.file)), args.offline_ttl)
            return offlinecode.encode(document) if args.code else document
        receipt = read_receipt(_read(args.file))
        licensing.offline_release(receipt)
        return f"released the seat of {regnum.mask(str(receipt.registration_number))} held by installation " \
               f"{receipt.install_id}"
    except OfflineError as exc:
        raise CliError(str(exc)) from None
    except ProtocolError as exc:
        raise _refused(exc) from None
    finally:
        licensing.db.close()


def _run(args: argparse.Namespace) -> str:
    if getattr(args, "dir", None) is None:
        raise CliError("--dir D is required: the server directory")
    if args.command == "init":
        signer = init(args.dir)
        return f"initialised {args.dir} (key id {signer.kid}); agents trust {ServerDir(args.dir).trusted_keys}"
    if not args.dir.is_dir():
        raise CliError(f"{args.dir}: no such directory (run: mikolic-server init --dir {args.dir})")
    if args.command == "serve":
        if (args.tls_cert is None) != (args.tls_key is None):
            raise CliError("--tls-cert and --tls-key go together")
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
        licensing = open_licensing(args.dir, args.document_ttl, args.rebind_interval)
        from mikolicd.refserver.app import serve  # aiohttp takes longer to import than an admin command to run
        limits = Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
        try:
            serve(licensing, *args.listen, _tls(args.tls_cert, args.tls_key), limits)
        except OSError as exc:
            raise CliError(f"serving on {':'.join(map(str, args.listen))} failed: {exc.strerror or exc}") from None
        return ""
    if args.command == "offline":
        return _offline(args)
    licensing = open_licensing(args.dir)
    try:
        if args.command == "issue":
            owner = Owner(args.company, args.contact, args.email, args.tel)
            return licensing.issue(owner, args.product, args.feature, args.seats, _issue_days(args), args.trial)
        if args.command == "coupon":
            return licensing.new_coupon(args.product, args.days)
        if args.command == "reset":
            return f"reset {regnum.mask(args.value.strip().upper())}: {licensing.reset(args.value)} binding(s) dropped"
        if args.command == "revoke":
            licensing.revoke(args.value)
            return f"revoked {regnum.mask(args.value.strip().upper())}"
        licensing.block(args.value)
        return f"blocked {regnum.mask(args.value.strip().upper())}"
    finally:
        licensing.db.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = " ".join(filter(None, (args.command, getattr(args, "offline", None))))
    try:
        out = _run(args)
    except (CliError, AdminError) as exc:
        print(f"mikolic-server {command}: {exc}", file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
