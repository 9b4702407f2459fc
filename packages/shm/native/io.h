// Bulk file writes from mapped (or any) memory; see io.cc.
#pragma once
#include <napi.h>

void InitIo(Napi::Env env, Napi::Object exports);
