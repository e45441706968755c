export { type AuthAttempt, Authenticator, type AuthOutcome } from './authenticator.js';
export { buildAuth } from './build.js';
export { Directory, directoryFrom, splitAddress } from './directory.js';
export { LoginRecorder } from './logins.js';
export { hashPassword, verifyPassword } from './passwords.js';
export * from './state/index.js';
export { answerPolicy } from './transport/dovecot-policy.js';
