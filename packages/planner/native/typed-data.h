// The elements of a JS typed array argument, shared by the addon's sources.
#pragma once

#include <napi.h>

#include <cstdint>

// A typed array of `type`: its elements and their count; null (no exception set) otherwise.
template <typename T>
T* TypedData(const Napi::Value& v, napi_typedarray_type type, size_t* length) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) return nullptr;
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  *length = a.ElementLength();
  // An empty array may have no storage at all: a pointer never read stands in (null means an error).
  static uint64_t none = 0;
  void* data = a.ArrayBuffer().Data();
  if (!data) return reinterpret_cast<T*>(&none);
  return reinterpret_cast<T*>(static_cast<uint8_t*>(data) + a.ByteOffset());
}
