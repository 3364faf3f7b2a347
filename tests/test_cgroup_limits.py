"""cgroup_cpu_limit and cgroup_memory_limit on cgroup trees laid out as Linux mounts them (v1 and v2), in a temp dir; and the
cores a run's processes keep where the user binds OpenMP threads."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from morphelites.cgroup_limits import cgroup_cpu_limit, cgroup_memory_limit


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v2_a_quota_on_the_process_cgroup_or_above_it_binds_and_max_means_none(tmp_path):
    root, self_cgroup = tmp_path / "cgroup", tmp_path / "self_cgroup"
    _write(self_cgroup, "0::/kubepods/pod1/container\n")
    _write(root / "kubepods/pod1/container/cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(root, self_cgroup) is None
    _write(root / "kubepods/pod1/cpu.max", "250000 100000\n")  # the pod's limit: 2.5 CPUs
    assert cgroup_cpu_limit(root, self_cgroup) == 2
    _write(root / "kubepods/pod1/container/cpu.max", "50000 100000\n")  # half a CPU: still one worker's worth
    assert cgroup_cpu_limit(root, self_cgroup) == 1


def test_v2_a_container_that_sees_its_own_cgroup_as_the_root_is_read_there(tmp_path):
    root, self_cgroup = tmp_path / "cgroup", tmp_path / "self_cgroup"
    _write(self_cgroup, "0::/docker/0123abcd\n")  # the host's path, not mounted inside the container
    _write(root / "cpu.max", "400000 100000\n")
    assert cgroup_cpu_limit(root, self_cgroup) == 4


def test_v1_reads_the_cpu_controller_and_minus_one_means_none(tmp_path):
    root, self_cgroup = tmp_path / "cgroup", tmp_path / "self_cgroup"
    _write(self_cgroup, "5:memory:/job\n4:cpu,cpuacct:/slurm/job42\n0::/\n")
    _write(root / "cpu,cpuacct/slurm/job42/cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu,cpuacct/slurm/job42/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(root, self_cgroup) is None
    _write(root / "cpu,cpuacct/slurm/job42/cpu.cfs_quota_us", "300000\n")
    assert cgroup_cpu_limit(root, self_cgroup) == 3


@pytest.mark.parametrize("cpu_max", [None, "", "garbage\n", "100000 0\n"])
def test_no_cgroup_file_system_or_an_unreadable_quota_is_no_quota(tmp_path, cpu_max):
    root, self_cgroup = tmp_path / "cgroup", tmp_path / "self_cgroup"
    if cpu_max is not None:
        _write(self_cgroup, "0::/\n")
        _write(root / "cpu.max", cpu_max)
    assert cgroup_cpu_limit(root, self_cgroup) is None


def test_memory_limit_v2_the_smallest_on_the_cgroup_or_above_it_and_max_means_none(tmp_path):
    root, self_cgroup = tmp_path / "cgroup", tmp_path / "self_cgroup"
    _write(self_cgroup, "0::/system.slice/job.scope\n")
    _write(root / "system.slice/job.scope/memory.max", "max\n")
    assert cgroup_memory_limit(root, self_cgroup) is None
    _write(root / "system.slice/memory.max", str(8 * 2**30) + "\n")
    assert cgroup_memory_limit(root, self_cgroup) == 8 * 2**30
    _write(root / "system.slice/job.scope/memory.max", str(2**30) + "\n")
    assert cgroup_memory_limit(root, self_cgroup) == 2**30


def test_memory_limit_v1_reads_the_memory_controller_and_its_no_limit_figure_means_none(tmp_path):
    root, self_cgroup = tmp_path / "cgroup", tmp_path / "self_cgroup"
    _write(self_cgroup, "4:memory:/slurm/job42\n3:cpu,cpuacct:/slurm/job42\n0::/\n")
    _write(root / "memory/slurm/job42/memory.limit_in_bytes", "9223372036854771712\n")
    _write(root / "cpu,cpuacct/slurm/job42/memory.limit_in_bytes", str(2**30) + "\n")  # not the memory controller's
    assert cgroup_memory_limit(root, self_cgroup) is None
    _write(root / "memory/slurm/job42/memory.limit_in_bytes", str(3 * 2**30) + "\n")
    assert cgroup_memory_limit(root, self_cgroup) == 3 * 2**30
    assert cgroup_cpu_limit(root, self_cgroup) is None  # and the memory limit is no CPU quota


@pytest.mark.parametrize("memory_max", [None, "", "garbage\n", "0\n"])
def test_no_cgroup_file_system_or_an_unreadable_memory_limit_is_no_limit(tmp_path, memory_max):
    root, self_cgroup = tmp_path / "cgroup", tmp_path / "self_cgroup"
    if memory_max is not None:
        _write(self_cgroup, "0::/\n")
        _write(root / "memory.max", memory_max)
    assert cgroup_memory_limit(root, self_cgroup) is None


_CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
_NEEDS_TWO_CORES = pytest.mark.skipif(len(_CORES) < 2, reason="binding to the first core shows only with two or more")


@_NEEDS_TWO_CORES
@pytest.mark.parametrize("binding", [{"OMP_PROC_BIND": "true"}, {"GOMP_CPU_AFFINITY": "0-1"}, {"OMP_PLACES": "cores"}])
def test_importing_pyribs_leaves_the_main_process_all_its_cores(binding):
    """Found in review: scikit-learn's OpenMP, loaded with pyribs, pinned the main process to its
    first core where a cluster's job script binds OpenMP threads; the run then counted one usable
    core and every process it started inherited it."""
    script = ("import os\nfrom morphelites.ribs_without_torch import import_ribs\nimport_ribs()\n"
              "from morphelites.config import usable_cores\nprint(sorted(os.sched_getaffinity(0)), usable_cores())")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **binding})  # fmt: skip
    assert result.returncode == 0, result.stderr
    from morphelites.config import usable_cores

    # usable_cores(), not the affinity's count: under a CPU quota (docker --cpus) it is the smaller (review)
    assert result.stdout.strip() == f"{_CORES} {usable_cores()}"


@_NEEDS_TWO_CORES
def test_a_worker_that_loads_torch_keeps_all_its_cores_where_the_user_binds_openmp(monkeypatch):
    """The same for the processes that load torch (its own OpenMP): the learner and independent
    workers had all run on the first core."""
    from morphelites.parallel.pool import WorkerPool

    monkeypatch.setenv("OMP_PROC_BIND", "true")
    pool = WorkerPool(1, "affinity_job:cores_after_importing_torch", role="test worker").start()
    try:
        pool.submit(0, 0, ())
        events = []
        deadline = time.monotonic() + 120
        while not events and time.monotonic() < deadline:
            events = [event for event in pool.poll(0.5) if event.kind == "done"]
    finally:
        pool.close()
    assert [event.value for event in events] == [_CORES]
    assert os.environ["OMP_PROC_BIND"] == "true", "the user's setting is given back"


def test_two_runs_starting_processes_from_threads_at_once_each_start_theirs_without_binding(monkeypatch):
    """Found in review: the environment of a process start was saved and restored without a lock, so
    a second run's start from another thread saw the user's binding back (its child pinned) and
    left OMP_PROC_BIND=false in the process for good."""
    import threading

    from morphelites.parallel.pool import one_native_thread_per_process

    monkeypatch.setenv("OMP_PROC_BIND", "true")
    seen: dict[str, str | None] = {}

    def start(name: str, hold_s: float) -> None:
        with one_native_thread_per_process():
            time.sleep(hold_s)  # the process start: the child copies the environment as it ends
            seen[name] = os.environ.get("OMP_PROC_BIND")

    first = threading.Thread(target=start, args=("first", 0.3))
    second = threading.Thread(target=start, args=("second", 0.4))  # still starting when the first is done
    first.start()
    time.sleep(0.1)
    second.start()
    first.join()
    second.join()
    assert seen == {"first": "false", "second": "false"}
    assert os.environ["OMP_PROC_BIND"] == "true"


@_NEEDS_TWO_CORES
def test_a_run_that_loads_torch_in_the_caller_s_process_leaves_it_all_its_cores():
    """Found in review: a serial run or `morphelites ppo` imports torch in the calling process (a
    notebook), and torch's OpenMP pinned it to one core for the run and after."""
    script = ("import os\nfrom morphelites.torch_state import caller_torch_state_kept\n"
              "with caller_torch_state_kept():\n    inside = sorted(os.sched_getaffinity(0))\n"
              "print(inside, sorted(os.sched_getaffinity(0)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OMP_PROC_BIND": "true"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{_CORES} {_CORES}"
