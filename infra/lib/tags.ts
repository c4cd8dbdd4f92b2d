// Discovery tags (docs/contracts.md).
export const TAG_CLUSTER = 'joinkeeper:cluster';
export const TAG_ROLE = 'joinkeeper:role';
export const ROLE_CONTROL_PLANE = 'control-plane';
export const ROLE_WORKER = 'worker';
/**
 * A control plane of cluster C is an instance with the instance profile named this + C; tags alone
 * never make one (shared/src/identity.rs holds the same prefix; its tests read this line).
 */
export const CONTROL_PLANE_PROFILE_PREFIX = 'joinkeeper-control-plane-';

export function controlPlaneProfileName(cluster: string): string {
  return `${CONTROL_PLANE_PROFILE_PREFIX}${cluster}`;
}
