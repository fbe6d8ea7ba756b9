// Small string helpers shared by every layer.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace nemotron {

// Levenshtein distance (insertions, deletions, substitutions; each costs 1).
size_t edit_distance(std::string_view a, std::string_view b);
// The candidate closest to `word` by edit distance, or "" when none is within max(2, |word|/3)
// edits. Used for "did you mean ...?" suggestions.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);
// " (did you mean 'x'?)" or "" when closest_match finds nothing.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);
std::vector<std::string> split(std::string_view s, char sep);
bool starts_with(std::string_view s, std::string_view prefix);

}  // namespace nemotron
