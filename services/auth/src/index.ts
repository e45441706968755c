export { Authenticator } from './authenticator.js';
export { Directory, splitAddress } from './directory.js';
export { hashPassword, verifyPassword } from './passwords.js';
