from perfmodel.cli.entry import main

main()
