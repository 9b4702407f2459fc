/**
 * @hotweights/transport-cuda-ipc: buckets between GPUs of one node over CUDA IPC, and device
 * staging for `--device cuda`. The CUDA driver is opened with dlopen (HOTWEIGHTS_CUDA_LIBRARY,
 * default libcuda.so.1); nothing CUDA is needed to build or install the package.
 */
import { cudaIpcTransportProvider } from './provider.js';

export { CudaDevice, DeviceMemoryError, openDriver } from './cuda-device.js';
export { CudaIpcTransport } from './cuda-ipc-transport.js';
export { CudaDeviceStaging } from './device-staging.js';
export { IpcWindow } from './ipc-window.js';
export { loadNative, type NativeCuda } from './native.js';
export { probeCudaIpc } from './probe.js';
export { cudaIpcTransportProvider as provider };
export default cudaIpcTransportProvider;
