export { type Diagnosis, diagnoseLoadFailure, rebuildFix } from './diagnose.js';
export {
  type AddonSpec,
  addonPlaces,
  currentTarget,
  type LazyAddon,
  type LoadedAddon,
  lazyAddon,
  loadAddon,
} from './load-addon.js';
export {
  type AddonTarget,
  isNativeAddonError,
  NativeAddonError,
  type NativeAddonErrorCode,
  type NativeAddonErrorDetails,
} from './native-addon-error.js';
