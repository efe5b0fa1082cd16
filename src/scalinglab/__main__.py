from scalinglab.cli import main

main()
