// File helpers shared by every reader and writer of user files:
//  - MappedFile: a whole file memory-mapped, shared by the tensors that view it;
//  - AtomicFile: write a file so that readers see either the old file or the complete new one;
//  - AtomicDirectory: build a directory (checkpoint, HF export) under a staging name and publish it
//    with one rename, so an interrupted run never leaves a half-written directory under the real name.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace nemotron::io {

// Read-only view of a whole file, mapped copy-on-write: pages are readable and writable, but a write
// changes only this process's copy, never the file (so a tensor viewing the map may be modified in
// place without a crash). Keep the shared_ptr alive as long as any pointer into data() is used.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint8_t* data() const { return data_; }  // nullptr for an empty file
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Whole file contents; errors name the path.
std::string read_file(const std::string& path);
// Reads up to `length` bytes at `offset` (fewer only at the end of the file).
std::string read_file_range(const std::string& path, uint64_t offset, size_t length);
uint64_t file_size(const std::string& path);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
// Joins two path parts with a single '/'.
std::string join_path(std::string_view dir, std::string_view name);

// Writes `contents` to `path` atomically (temp file in the same directory, fsync, rename).
void write_file_atomic(const std::string& path, std::string_view contents);

// A file written under a temporary name in the target's directory ("NAME.tmp-XXXXXX") and renamed
// onto the target by commit(), after an fsync; the directory is fsynced too. Destroying it without
// commit() removes the temporary file, so errors and exceptions leave nothing behind.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void append(const void* data, size_t nbytes);
  void append(std::string_view bytes) { append(bytes.data(), bytes.size()); }
  // Writes at an absolute offset (the file grows as needed); does not move the append position.
  void write_at(uint64_t offset, const void* data, size_t nbytes);
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t append_offset_ = 0;
  bool committed_ = false;
};

// A directory assembled under "DIR.tmp-XXXXXX" next to DIR and published by commit(): every file
// inside is fsynced, then the staging directory is renamed to DIR in one step. If DIR already exists
// it must be empty unless `replace_existing`; a replaced DIR is swapped out atomically (renameat2
// RENAME_EXCHANGE where the file system supports it) and then deleted. Destroying it without
// commit() deletes the staging directory.
class AtomicDirectory {
 public:
  AtomicDirectory(std::string path, bool replace_existing);
  ~AtomicDirectory();
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;

  // Where to write the contents until commit().
  const std::string& staging_path() const { return staging_path_; }
  std::string staging_file(std::string_view name) const { return join_path(staging_path_, name); }
  const std::string& path() const { return path_; }
  void commit();

 private:
  std::string path_;
  std::string staging_path_;
  bool replace_existing_;
  bool committed_ = false;
};

// fsync of a directory, so that a rename inside it survives a crash.
void fsync_directory(const std::string& dir);

}  // namespace nemotron::io
