{
  "targets": [
    {
      "target_name": "hotweights_planner",
      "sources": ["native/item-text.cc", "native/delta.cc", "native/packing.cc", "native/key-order.cc", "native/entries.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2"]
    }
  ]
}
