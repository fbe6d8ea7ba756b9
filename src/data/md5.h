// MD5 (RFC 1321), only to name cache files the way Megatron does: hashlib.md5(description).hexdigest().
#pragma once
#include <string>
#include <string_view>

namespace nemotron::data {

// Lower-case hex digest of `bytes`.
std::string md5_hex(std::string_view bytes);

}  // namespace nemotron::data
