// The regular expressions of the API's CEL rules, each used twice: inside the rule (RE2, through
// CEL's matches()) and by the rule's TypeScript twin (JavaScript, with the `u` flag so that both
// engines step through code points). They use only constructs on which the two engines agree:
// literals, bracket classes, the escapes \t \n \f \r (never the shorthand classes \s \S \w \d,
// which differ), groups, alternation, counted repetition, and `^`/`$` at the ends of the input.

/** A lowercase DNS label. */
export const LABEL = "[a-z0-9]([a-z0-9-]*[a-z0-9])?";
/** A TCP port, 1 to 65535, without leading zeros. */
export const PORT =
  "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
/**
 * A registry host as the docker reference grammar recognises it before the first '/': a name with
 * at least one dot (DNS name or IPv4 address) or `localhost`, with an optional port, or any single
 * label with a port (`registry:5000`). A single label without a port is not a host: docker's
 * grammar reads it as a Docker Hub repository.
 */
export const HOST = `((${LABEL}([.]${LABEL})+|localhost)(:${PORT})?|${LABEL}:${PORT})`;
/** A repository path component (docker reference grammar: separators `.`, `_`, `__`, `-`+). */
export const PATH_COMPONENT = "[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*";
/** A first path component of a Docker Hub short name: no dot, so it cannot be a host. */
const SHORT_FIRST = "[a-z0-9]+((_|__|-+)[a-z0-9]+)*";
const TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST = "(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})";
const TAG_OR_DIGEST = `(:${TAG}|@${DIGEST})`;

/**
 * Every scope form, anchored: `*`, `*.domain`, host[:port][/path...][:tag|@digest], short name.
 * The host alternative accepts any dotted label sequence: a single label without a port is a
 * Docker Hub short name's first component, which the last alternative accepts anyway. Written
 * compactly because the API server's cost estimate of matches() grows with the regex's length
 * times the string's maxLength times the list's maxItems, and must stay within its budget.
 */
export const SCOPE_REGEX =
  `^([*]|[*][.]${LABEL}([.]${LABEL})*` +
  `|${LABEL}([.]${LABEL})*(:${PORT})?((/${PATH_COMPONENT})+${TAG_OR_DIGEST}?)?` +
  `|${SHORT_FIRST}(/${PATH_COMPONENT})*${TAG_OR_DIGEST}?)$`;
/** A fully qualified repository or repository prefix: host[:port][/path...], no tag or digest. */
export const REPOSITORY_PREFIX_REGEX = `^${HOST}(/${PATH_COMPONENT})*$`;
/** A fully qualified repository: host[:port]/path..., at least one path component. */
export const REPOSITORY_REGEX = `^${HOST}(/${PATH_COMPONENT})+$`;
/** A fully qualified image reference that names one image: a repository and a tag or digest. */
export const REFERENCE_REGEX = `^${HOST}(/${PATH_COMPONENT})+${TAG_OR_DIGEST}$`;
export const DNS1123_SUBDOMAIN_REGEX = `^${LABEL}([.]${LABEL})*$`;
export const DNS1123_LABEL_REGEX = `^${LABEL}$`;
/** A DNS name SAN, optionally a wildcard one. */
export const HOSTNAME_REGEX = `^([*][.])?${LABEL}([.]${LABEL})*$`;
/** RE2's `^\S+@\S+$` (OpenShift's e-mail check) with \S spelt out, since JavaScript's \s also
 * matches other spaces: RE2's \s is [\t\n\f\r ]. */
export const EMAIL_REGEX = "^[^\\t\\n\\f\\r ]+@[^\\t\\n\\f\\r ]+$";
/** A key of a Secret's data. */
export const SECRET_KEY_REGEX = "^[-._a-zA-Z0-9]+$";

/** The regex `source` as the twin runs it. */
export function regex(source: string): RegExp {
  return new RegExp(source, "u");
}
