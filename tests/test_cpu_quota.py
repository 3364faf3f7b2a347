"""cgroup_cpu_limit on cgroup trees laid out as Linux mounts them (v1 and v2), in a temp dir."""

from pathlib import Path

import pytest

from morphelites.cpu_quota import cgroup_cpu_limit


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
