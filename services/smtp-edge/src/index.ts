export { Edge } from './smtp/edge.js';
