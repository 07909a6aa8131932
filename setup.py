"""Packaging from settings.ini (nbdev 2.4 layout). No pkg_resources: it is gone from current setuptools."""
import shlex
from configparser import ConfigParser
import setuptools

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

def reqs(key): return shlex.split(cfg.get(key, ''))

setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    keywords=cfg['keywords'], author=cfg['author'], author_email=cfg['author_email'],
    license='Apache Software License 2.0', url=cfg['git_url'],
    classifiers=['Development Status :: 3 - Alpha', 'Intended Audience :: Developers',
                 'Natural Language :: English', 'Programming Language :: Python :: 3'],
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True,
    install_requires=reqs('requirements'),
    extras_require={'dev': reqs('dev_requirements'), 'bench': reqs('bench_requirements')},
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md', encoding='utf8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)
