//! `zig build` compiles libforks for every supported platform and copies
//! the results into lib/<platform>/, where they are committed: the Bun
//! package loads them from there. The output is byte-for-byte reproducible
//! (CI rebuilds and fails if lib/ changes).
//!
//! `zig build test` runs the Zig unit tests and the C test suite.
//!
//! `zig build -Ddarwin-paths=true` builds instead, for this machine (Linux
//! only), a libforks.so and libforks-server that take every code path the
//! macOS build takes (sys.paths), into zig-out/darwin-paths/ and never into
//! lib/: the tests run them under the XNU socket-limit emulation of
//! tests/darwin-paths/ (scripts/test.sh, suite darwin-paths).

const std = @import("std");

const Platform = struct {
    /// Node.js names: process.platform-process.arch[-musl].
    dir: []const u8,
    query: []const u8,
    file: []const u8,
};

/// glibc 2.17 is the oldest glibc still common (and Bun's own floor), so
/// the library loads wherever Bun runs. macOS 11 is the first with arm64.
const platforms = [_]Platform{
    .{ .dir = "linux-x64", .query = "x86_64-linux-gnu.2.17", .file = "libforks.so" },
    .{ .dir = "linux-arm64", .query = "aarch64-linux-gnu.2.17", .file = "libforks.so" },
    .{ .dir = "linux-x64-musl", .query = "x86_64-linux-musl", .file = "libforks.so" },
    .{ .dir = "linux-arm64-musl", .query = "aarch64-linux-musl", .file = "libforks.so" },
    .{ .dir = "darwin-x64", .query = "x86_64-macos.11.0", .file = "libforks.dylib" },
    .{ .dir = "darwin-arm64", .query = "aarch64-macos.11.0", .file = "libforks.dylib" },
};

pub fn build(b: *std.Build) void {
    const optimize = b.option(std.builtin.OptimizeMode, "optimize", "Optimization mode (default: ReleaseSafe)") orelse .ReleaseSafe;
    const darwin_paths = b.option(bool, "darwin-paths", "Build for this Linux machine, taking every code path of the macOS build, into zig-out/darwin-paths/ (lib/ is left alone)") orelse false;
    const options = b.addOptions();
    options.addOption(bool, "darwin_paths", darwin_paths);

    const update_lib = b.addUpdateSourceFiles();
    if (darwin_paths) {
        const host = b.graph.host.result;
        if (host.os.tag != .linux) @panic("-Ddarwin-paths=true builds for Linux only");
        const query = std.Target.Query.parse(.{ .arch_os_abi = if (host.cpu.arch == .aarch64) "aarch64-linux-gnu.2.17" else "x86_64-linux-gnu.2.17" }) catch @panic("bad target");
        const target = b.resolveTargetQuery(query);
        const dest: std.Build.InstallDir = .{ .custom = "darwin-paths" };
        const library = addLibrary(b, target, optimize, options);
        b.getInstallStep().dependOn(&b.addInstallArtifact(library, .{ .dest_dir = .{ .override = dest } }).step);
        const server = addServerExecutable(b, target, optimize, options);
        b.getInstallStep().dependOn(&b.addInstallArtifact(server, .{ .dest_dir = .{ .override = dest } }).step);
    } else {
        for (platforms) |platform| {
            const query = std.Target.Query.parse(.{ .arch_os_abi = platform.query }) catch @panic("bad target");
            const target = b.resolveTargetQuery(query);
            const library = addLibrary(b, target, optimize, options);
            update_lib.addCopyFileToSource(library.getEmittedBin(), b.fmt("lib/{s}/{s}", .{ platform.dir, platform.file }));
            const server = addServerExecutable(b, target, optimize, options);
            update_lib.addCopyFileToSource(server.getEmittedBin(), b.fmt("lib/{s}/libforks-server", .{platform.dir}));
        }
        b.getInstallStep().dependOn(&update_lib.step);
    }

    const abi = addAbiGeneration(b);
    b.getInstallStep().dependOn(&abi.update.step);
    const abi_step = b.step("abi", "Regenerate src/abi.ts and the generated parts of lib/include/*.h from zig/abi.zig");
    abi_step.dependOn(&abi.update.step);

    const native = b.standardTargetOptions(.{});
    const unit_module = rootModule(b, native, .Debug, options);
    // abi_test.zig reads the generated header through the C compiler.
    unit_module.addIncludePath(abi.header.dirname());
    const unit_tests = b.addTest(.{ .root_module = unit_module });
    const run_unit_tests = b.addRunArtifact(unit_tests);

    const c_tests = b.addSystemCommand(&.{ "bash", "tests/c/run.sh" });
    c_tests.setCwd(b.path("."));
    c_tests.step.dependOn(&update_lib.step);
    c_tests.step.dependOn(&abi.update.step);
    c_tests.has_side_effects = true;

    const test_step = b.step("test", "Run the Zig unit tests and the C test suite");
    test_step.dependOn(&run_unit_tests.step);
    test_step.dependOn(&c_tests.step);

    const unit_step = b.step("unit", "Run the Zig unit tests only");
    unit_step.dependOn(&run_unit_tests.step);

    addBenchmarks(b);
}

fn rootModule(b: *std.Build, target: std.Build.ResolvedTarget, optimize: std.builtin.OptimizeMode, options: *std.Build.Step.Options) *std.Build.Module {
    const module = b.createModule(.{
        .root_source_file = b.path("zig/root.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        // Server and children must never unwind into the host's frames.
        .unwind_tables = .none,
    });
    module.addOptions("build_options", options);
    return module;
}

const AbiGeneration = struct {
    update: *std.Build.Step.UpdateSourceFiles,
    /// The generated lib/include/libforks.h (libforks_ext.h beside it),
    /// before it is copied back.
    header: std.Build.LazyPath,
};

/// zig/gen_abi.zig writes src/abi.ts and the marked sections of the
/// headers from zig/abi.zig; the results are copied into the source tree,
/// where they are committed (CI fails when they are stale, as for lib/).
fn addAbiGeneration(b: *std.Build) AbiGeneration {
    const host = b.graph.host;
    const generator = b.addExecutable(.{
        .name = "gen_abi",
        .root_module = b.createModule(.{ .root_source_file = b.path("zig/gen_abi.zig"), .target = host, .optimize = .Debug }),
    });
    generator.root_module.addImport("abi", b.createModule(.{ .root_source_file = b.path("zig/abi.zig"), .target = host }));
    const run = b.addRunArtifact(generator);
    const ts = run.addOutputFileArg("abi.ts");
    const update = b.addUpdateSourceFiles();
    update.addCopyFileToSource(ts, "src/abi.ts");
    var header: ?std.Build.LazyPath = null;
    for ([_][]const u8{ "libforks.h", "libforks_ext.h" }) |name| {
        run.addFileArg(b.path(b.fmt("lib/include/{s}", .{name})));
        const out = run.addOutputFileArg(b.fmt("include/{s}", .{name}));
        update.addCopyFileToSource(out, b.fmt("lib/include/{s}", .{name}));
        if (header == null) header = out;
    }
    return .{ .update = update, .header = header.? };
}

/// libforks-server, the program a clean server runs. Dynamically linked
/// (musl included) so its children can dlopen their entrypoints.
fn addServerExecutable(b: *std.Build, target: std.Build.ResolvedTarget, optimize: std.builtin.OptimizeMode, options: *std.Build.Step.Options) *std.Build.Step.Compile {
    const module = b.createModule(.{
        .root_source_file = b.path("zig/server_main.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .strip = true,
        .pic = true,
        .unwind_tables = .none,
    });
    module.addOptions("build_options", options);
    const executable = b.addExecutable(.{
        .name = "libforks-server",
        .root_module = module,
        .linkage = .dynamic,
    });
    executable.bundle_ubsan_rt = false;
    return executable;
}

fn addLibrary(b: *std.Build, target: std.Build.ResolvedTarget, optimize: std.builtin.OptimizeMode, options: *std.Build.Step.Options) *std.Build.Step.Compile {
    const module = rootModule(b, target, optimize, options);
    module.strip = true;
    module.pic = true;
    const library = b.addLibrary(.{
        .linkage = .dynamic,
        .name = "forks",
        .root_module = module,
    });
    // No UBSan runtime: there is no C code to check, and its handlers
    // would be exported into the host process.
    library.bundle_ubsan_rt = false;
    // Export the C API only. ELF: the version script. Mach-O, which the
    // linker Zig ships filters by no list: compiler_rt is not bundled
    // (libSystem carries it), or its ~260 weak symbols would be exported
    // into the host on x86-64.
    if (target.result.os.tag == .linux) library.setVersionScript(b.path("zig/libforks.map"));
    // Stack probes call __zig_probe_stack, which only Zig's compiler_rt
    // has, so the x86-64 build goes without them, as the arm64 build
    // already does (it references no probe).
    if (target.result.os.tag.isDarwin()) {
        library.bundle_compiler_rt = false;
        module.stack_check = false;
    }
    return library;
}

/// `zig build bench` compiles the benchmark suite's C baselines
/// (bench/native/*.c, one executable each) for this machine into
/// zig-out/bench/. Those that include <libforks.h> link the prebuilt
/// library of this platform from lib/ (rpath set), so they measure exactly
/// the library the Bun package loads. Nothing else depends on this step.
fn addBenchmarks(b: *std.Build) void {
    const bench_step = b.step("bench", "Build the benchmark baselines (bench/native/*.c) into zig-out/bench");
    const host = b.graph.host;
    const lib_dir = switch (host.result.os.tag) {
        .macos => if (host.result.cpu.arch == .aarch64) "lib/darwin-arm64" else "lib/darwin-x64",
        else => if (host.result.cpu.arch == .aarch64) "lib/linux-arm64" else "lib/linux-x64",
    };
    const lib_file = if (host.result.os.tag == .macos) "libforks.dylib" else "libforks.so";

    var dir = b.build_root.handle.openDir("bench/native", .{ .iterate = true }) catch return;
    defer dir.close();
    var entries = dir.iterate();
    while (entries.next() catch @panic("cannot list bench/native")) |entry| {
        if (entry.kind != .file or !std.mem.endsWith(u8, entry.name, ".c")) continue;
        const file_name = b.dupe(entry.name);
        const source = dir.readFileAlloc(b.allocator, file_name, 1 << 20) catch @panic("cannot read a bench/native source");
        const module = b.createModule(.{ .target = host, .optimize = .ReleaseFast, .link_libc = true });
        module.addCSourceFile(.{
            .file = b.path(b.fmt("bench/native/{s}", .{file_name})),
            .flags = &.{ "-std=gnu11", "-Wall", "-Wextra", "-Werror" },
        });
        module.addIncludePath(b.path("bench/native"));
        if (std.mem.indexOf(u8, source, "<libforks.h>") != null) {
            module.addIncludePath(b.path("lib/include"));
            module.addObjectFile(b.path(b.fmt("{s}/{s}", .{ lib_dir, lib_file })));
            module.addRPath(b.path(lib_dir));
        }
        const exe = b.addExecutable(.{ .name = file_name[0 .. file_name.len - 2], .root_module = module });
        const install = b.addInstallArtifact(exe, .{ .dest_dir = .{ .override = .{ .custom = "bench" } } });
        bench_step.dependOn(&install.step);
    }
}
