/**
 * Security by default: client ACL, proxy authentication, admin guard, SSRF
 * destination policy, X-Forwarded-For handling and request hygiene.
 * @module
 */
export {
  type AddressClass,
  type Cidr,
  cidrContains,
  classifyAddress,
  formatIp,
  type IpAddress,
  isIp,
  isLoopback,
  matchesAny,
  parseCidr,
  parseCidrList,
  parseIp,
} from "./cidr.ts";
export {
  type AddressPolicy,
  type AddressPolicyOptions,
  type AllowPrivate,
  checkConnectPort,
  createAddressPolicy,
  createHostnameCheck,
  DEFAULT_CONNECT_PORTS,
  type HostnameCheck,
  type HostnameCheckOptions,
  literalHostRefusal,
  parseAllowPrivate,
  parseConnectPorts,
} from "./ssrf.ts";
export {
  type ClientAcl,
  type ClientAclOptions,
  createClientAcl,
  DEFAULT_ALLOWED_CLIENTS,
} from "./acl.ts";
export {
  createProxyAuth,
  parseBasic,
  parseHtpasswd,
  type PasswordEntry,
  type ProxyAuth,
  type ProxyAuthOptions,
} from "./auth.ts";
export {
  adminGuard,
  type AdminGuardOptions,
  constantTimeEqual,
  isLocalRequest,
  presentedToken,
} from "./admin.ts";
export { clientIpFrom, forwardedForValue, isTrustedPeer, UNKNOWN_CLIENT } from "./forwarded.ts";
export {
  bodyLimitPhase,
  BodyTooLargeError,
  checkFraming,
  checkHeaderCount,
  checkHeaderSize,
  DEFAULT_MAX_BODY_SIZE,
  DEFAULT_MAX_HEADER_COUNT,
  DEFAULT_MAX_HEADER_SIZE,
  hygieneCheck,
  limitStream,
  type RequestHygieneOptions,
  requestHygienePhase,
} from "./hygiene.ts";
