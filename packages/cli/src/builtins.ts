/**
 * The plugins built into the CLI. context.ts imports this module only when a command asks for its
 * transports or adapters, so commands that need neither (`plan`, `publish`) do not load the
 * runtime, the adapters and the local transport at start-up.
 */
import { directoryAdapterProvider } from '@hotweights/adapter-directory';
import { memoryAdapterProvider } from '@hotweights/adapter-memory';
import type { AdapterProvider, TransportProvider } from '@hotweights/core';
import { localTransportProvider } from '@hotweights/transport-local';

/** Built-in providers that core ships; later issues add to this list. */
export const BUILTIN_PROVIDERS: TransportProvider[] = [localTransportProvider];

/** Built-in adapters: `directory` (with --target) and `memory` (the default without). */
export const BUILTIN_ADAPTERS: AdapterProvider[] = [directoryAdapterProvider, memoryAdapterProvider];
