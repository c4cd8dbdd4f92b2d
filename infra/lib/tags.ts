// Discovery tags (docs/contracts.md).
export const TAG_CLUSTER = 'joinkeeper:cluster';
export const TAG_ROLE = 'joinkeeper:role';
export const ROLE_CONTROL_PLANE = 'control-plane';
export const ROLE_WORKER = 'worker';
