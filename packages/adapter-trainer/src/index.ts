export { Exchange, type ExchangeFile } from './exchange.js';
export { buildOffer, checkOffer, type Layout, OFFER_SCHEMA, OFFER_VERSION, type Offer } from './offer.js';
export {
  type OptPolicy,
  POLICY_TABLE_URL,
  type PolicyPreview,
  policyFactors,
  policyTable,
  previewPolicy,
} from './opt-policy.js';
// `provider` is the name plugin discovery looks for.
export {
  trainerAdapterOptions,
  trainerAdapterProvider,
  trainerAdapterProvider as provider,
} from './provider.js';
export { TrainerAdapter, type TrainerAdapterOptions } from './trainer-adapter.js';
